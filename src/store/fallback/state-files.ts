import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { safeName } from './journal.js';
import type { ModeInfo } from './options.js';
import { type ProcessIdentity, isAlive } from './process-identity.js';
import { namesIn } from '../../dir-names.js';

/**
 * Each running FallbackStore keeps `<db>.fallback/state-<worker>-<pid>.json` up to date with its
 * mode. The database's ckpt_workers table cannot say "degraded": while the database is locked
 * nobody can write that row. `ckpt status` and `ckpt doctor` read these files instead.
 */
export interface FallbackState {
  workerId: string;
  owner: ProcessIdentity;
  mode: 'normal' | 'degraded';
  /** Epoch ms the mode began (null: normal since start). */
  since: number | null;
  reason: string | null;
  kind: 'locked' | 'broken' | null;
  openClaims: number;
  journal: string;
  updatedAt: number;
}

/** This process's state file for a worker id: the reader matches `state-*.json`. */
export function stateFileOf(dir: string, workerId: string): string {
  return path.join(dir, `state-${safeName(workerId)}-${process.pid}.json`);
}

/** Write a state file whole (a temporary file renamed over it: a reader never sees half). Throws on I/O errors. */
export function writeStateFile(file: string, body: FallbackState, fileMode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(body), { mode: fileMode });
  fs.renameSync(tmp, file);
}

/** One process's state file: written whole at each change of mode, removed at close. */
export class StateFile {
  readonly file: string;

  constructor(
    dir: string,
    private readonly workerId: string,
    private readonly owner: ProcessIdentity,
    private readonly fileMode: number,
    private readonly log: Logger | undefined,
  ) {
    this.file = stateFileOf(dir, workerId);
  }

  /** Never throws: the state file only informs `ckpt status` and `ckpt doctor`. */
  write(mode: ModeInfo, openClaims: number, journal: string, now: number): void {
    try {
      const body: FallbackState = { workerId: this.workerId, owner: this.owner, ...mode, openClaims, journal: path.basename(journal), updatedAt: now };
      writeStateFile(this.file, body, this.fileMode);
    } catch (err) {
      this.log?.warn({ err }, 'could not write the fallback state file');
    }
  }

  remove(): void {
    try {
      fs.rmSync(this.file, { force: true });
    } catch {
      // ignore
    }
  }
}

/** The fallback folder of a database path. */
export function fallbackDirOf(dbPath: string): string {
  return `${path.resolve(dbPath)}.fallback`;
}

/**
 * Remove the state files of processes that are gone (a SIGKILLed daemon never removes its
 * own): pid and start time from the file, checked against /proc (process-identity.ts). A file
 * that cannot be read or parsed is left alone: it may be being written. Returns how many went.
 */
export function removeStaleStates(dir: string): number {
  const names = namesIn(dir).filter((n) => n.startsWith('state-') && n.endsWith('.json'));
  let removed = 0;
  for (const n of names) {
    const full = path.join(dir, n);
    try {
      const st = JSON.parse(fs.readFileSync(full, 'utf8')) as Partial<FallbackState>;
      if (st.owner && !isAlive(st.owner)) {
        fs.rmSync(full, { force: true });
        removed++;
      }
    } catch {
      // being rewritten, or not ours to judge
    }
  }
  return removed;
}

/**
 * The fallback folder a configuration uses: `fallbackDir` when set (required with
 * PostgreSQL), else `<database>.fallback` beside the SQLite file. The daemon and the CLI both
 * ask here, so `ckpt status` and `ckpt doctor` read where the daemon writes.
 */
export function fallbackDirForConfig(database: { kind: 'sqlite'; path: string } | { kind: 'postgres' }, fallbackDir: string | undefined): string | null {
  if (fallbackDir !== undefined) return fallbackDir;
  return database.kind === 'sqlite' ? fallbackDirOf(database.path) : null;
}

/** State of every ckpt process using this fallback folder whose process still runs. */
export function readFallbackStates(dir: string): FallbackState[] {
  const names = namesIn(dir).filter((n) => n.startsWith('state-') && n.endsWith('.json'));
  const out: FallbackState[] = [];
  for (const n of names) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as FallbackState;
      if (isAlive(s.owner)) out.push(s);
    } catch {
      // being rewritten (rename over it): the next read sees it
    }
  }
  return out.sort((a, b) => (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0));
}
