/**
 * A real ckpt setup in a temp folder: config file, inbox with real files, and a database written
 * through the real SqliteStore with a spread of outcomes (completed, failed, dead, pending,
 * processing, an attempt history, a registered worker).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { CheckpointStore, DiscoveredFile } from '../../src/store/types.js';
import { tmpDir } from '../helpers/tmp.js';

export interface Workspace {
  dir: string;
  inbox: string;
  db: string;
  config: string;
  file(name: string): string;
}

export function makeWorkspace(extraConfig: Record<string, unknown> = {}): Workspace {
  const dir = tmpDir('ckpt-cli-');
  const inbox = path.join(dir, 'inbox');
  fs.mkdirSync(inbox);
  const db = path.join(dir, 'state', 'ckpt.db');
  const config = path.join(dir, 'ckpt.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      database: 'state/ckpt.db',
      watch: [{ dir: 'inbox' }],
      handler: { command: ['node', '-e', '0', '{path}'] },
      retry: { maxRetries: 1, baseDelayMs: 0, maxDelayMs: 0 },
      ...extraConfig,
    }),
  );
  return { dir, inbox, db, config, file: (name) => path.join(inbox, name) };
}

export const SEED = {
  completed: ['a.csv', 'b.csv', 'c.csv'],
  dead: ['bad.csv'],
  failed: ['flaky.csv'],
  processing: ['slow.csv'],
  pending: ['new.csv', 'newer.json'],
} as const;

/** What the runner records for an exit-65 handler: a first line, then the tail of stderr. */
export const BAD_ERROR = 'exit code 65 (EX_DATAERR: the handler rejected the file); stderr:\nline 3: expected 2 columns, got 3\n';

export const WORKER = `${os.hostname()}:${process.pid}`;

/**
 * Seeds the database through the store API, with times around `now` so the "last minute" and
 * "last hour" windows hold the outcomes.
 */
export async function seedStore(ws: Workspace, now = Date.now()): Promise<void> {
  fs.mkdirSync(path.dirname(ws.db), { recursive: true });
  const store = new SqliteStore(ws.db, { retry: SEED_RETRY });
  try {
    await seedInto(store, ws, now);
  } finally {
    await store.close();
  }
}

/** The retry policy the seeded outcomes assume (bad.csv is dead after its second failure). */
export const SEED_RETRY = { maxRetries: 1, baseDelayMs: 0, maxDelayMs: 0 };

/**
 * The same spread of outcomes through any store (the PostgreSQL CLI tests use it too).
 * `ledgerPath` turns the workspace's file path into the name the ledger keeps (per-host prefixes).
 */
export async function seedInto(store: CheckpointStore, ws: Workspace, now = Date.now(), ledgerPath: (p: string) => string = (p) => p): Promise<void> {
  const all = [...SEED.completed, ...SEED.dead, ...SEED.failed, ...SEED.processing, ...SEED.pending];
  const files: DiscoveredFile[] = all.map((name, i) => {
    const p = ws.file(name);
    fs.writeFileSync(p, `id,name\n${i},x\n`);
    const st = fs.statSync(p);
    return { fileUrl: ledgerPath(p), fileType: name.endsWith('.json') ? 'json' : 'csv', mtimeMs: st.mtimeMs, size: st.size, fingerprint: `${st.size}:${st.mtimeMs}:${st.dev}:${st.ino}` };
  });
  await store.discover(files, now - 30_000);
  const claimOne = async (name: string, at: number) => {
    const c = await store.claimFile(ledgerPath(ws.file(name)), { workerId: WORKER, leaseMs: 60_000, now: at });
    if (c === null) throw new Error(`could not claim ${name}`);
    return c;
  };
  for (const name of SEED.completed) {
    const c = await claimOne(name, now - 20_000);
    await store.complete([{ fileUrl: c.fileUrl, token: c.token, now: now - 19_000 + name.length, stats: { totalRows: 10, filteredRows: 1, persistedRows: 9, durationMs: 900 }, afterAction: 'keep' }]);
  }
  // bad.csv: fails once (retry), then permanently -> dead, with a multi-line error.
  let c = await claimOne('bad.csv', now - 20_000);
  await store.fail({ fileUrl: c.fileUrl, token: c.token, error: 'exit code 1: connection refused', permanent: false, now: now - 18_000, durationMs: 2_000 });
  c = await claimOne('bad.csv', now - 10_000);
  await store.fail({ fileUrl: c.fileUrl, token: c.token, error: BAD_ERROR, permanent: true, now: now - 9_000, durationMs: 1_000 });
  c = await claimOne('flaky.csv', now - 8_000);
  await store.fail({ fileUrl: c.fileUrl, token: c.token, error: 'timeout after 5000 ms', permanent: false, now: now - 3_000, durationMs: 5_000, reason: 'timeout' });
  await claimOne('slow.csv', now - 2_000);
  await store.touchWorker({ workerId: WORKER, host: os.hostname(), pid: process.pid, mode: 'normal', modeSince: null, modeReason: null }, now);
}
