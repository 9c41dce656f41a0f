/**
 * `ckpt top`: a live view of the ledger, refreshed about once a second (render.ts draws it,
 * screen.ts runs the terminal). Without a terminal on both stdin and stdout, or with `--once`
 * or `--json`, it prints one snapshot and exits, so that scripts can use it.
 *
 * It only reads: the SQLite file is opened read-only (a WAL reader never blocks the daemon) with
 * a short busy wait, since SQLite's wait would freeze the keyboard and the redraw.
 */
import fs from 'node:fs';
import type { ResolvedConfig } from '../../config/types.js';
import { StoreUnavailableError } from '../../store/sqlite-errors.js';
import type { CheckpointStore } from '../../store/types.js';
import { openCliStore } from '../context.js';
import { print } from '../output.js';
import { renderTop } from '../top/render.js';
import { runScreen } from '../top/screen.js';
import { topSnapshot } from '../top/snapshot.js';
import { postgresLabel, statusInputs } from './status.js';

export interface TopOptions {
  json?: boolean;
  once?: boolean;
}

/** About once a second: fresh enough to watch files move, and what a refresh reads is in docs/top.md (Cost). */
export const REFRESH_MS = 1_000;

/**
 * How long one read may wait for a lock inside SQLite. In WAL mode a reader does not wait for
 * writers; this only covers the brief moments of WAL recovery, and keeps the keyboard alive.
 */
const READ_BUSY_MS = 100;

export async function topCommand(config: ResolvedConfig, opts: TopOptions): Promise<number> {
  const database = config.database.kind === 'sqlite' ? config.database.path : null;
  const where = database ?? (await postgresLabel(config));
  const live = !opts.json && !opts.once && process.stdout.isTTY && process.stdin.isTTY;
  if (!live) {
    const now = Date.now();
    const store = await openCliStore(config, { readonly: true });
    try {
      const snap = await topSnapshot(store, database, statusInputs(config, now));
      if (opts.json) process.stdout.write(`${JSON.stringify(snap)}\n`);
      else print(renderTop(snap, { now, width: Infinity, height: Infinity, where, problem: null, live: false }).join('\n'));
    } finally {
      await store.close();
    }
    return 0;
  }
  const reader = new LiveReader(config);
  try {
    await runScreen(
      { where, read: (now) => reader.tryRead(now, database) },
      { intervalMs: REFRESH_MS, input: process.stdin, output: process.stdout },
    );
  } finally {
    await reader.close();
  }
  return 0;
}

/**
 * The store for a live screen: opened on the first read and again after a read fails, or when
 * the SQLite file at the configured path is no longer the one open (a corrupt database moved
 * aside and salvaged into a new file: the old one would show a frozen past).
 */
class LiveReader {
  private store: CheckpointStore | null = null;
  private inode: number | null = null;

  constructor(private readonly config: ResolvedConfig) {}

  private async read(now: number, database: string | null) {
    if (this.store !== null && database !== null && this.inodeOf(database) !== this.inode) await this.close();
    if (this.store === null) {
      const inode = database === null ? null : this.inodeOf(database);
      this.store = await openCliStore(this.config, { readonly: true, busyTimeoutMs: READ_BUSY_MS });
      this.inode = inode;
    }
    try {
      return await topSnapshot(this.store, database, statusInputs(this.config, now));
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** One refresh; what went wrong comes out as one short line for the screen. */
  async tryRead(now: number, database: string | null) {
    try {
      return await this.read(now, database);
    } catch (err) {
      throw new Error(whyUnreadable(err), { cause: err });
    }
  }

  private inodeOf(file: string): number | null {
    try {
      return fs.statSync(file).ino;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    const s = this.store;
    this.store = null;
    await s?.close();
  }
}

/**
 * A lock, said plainly (the store's message names the path and the statement, which the screen
 * shows in its title already); anything else as its first line.
 */
export function whyUnreadable(err: unknown): string {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof StoreUnavailableError && e.kind === 'locked') return `locked by another process (${e.code ?? 'SQLITE_BUSY'})`;
  }
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
