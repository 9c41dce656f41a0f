/**
 * Helpers for the fallback tests: the real sqlite3 shell holding locks, real files.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { DiscoveredFile } from '../../src/store/types.js';
import { waitFor } from '../helpers/wait.js';

const shells = new Set<ChildProcessWithoutNullStreams>();

export interface Shell {
  /** Send SQL (or dot commands) to the shell's stdin. */
  send(text: string): void;
  /** COMMIT and quit; resolves when the shell has exited. */
  release(): Promise<void>;
  readonly pid: number;
}

/**
 * The real sqlite3 shell holding a lock on `db`: `BEGIN EXCLUSIVE` (a write lock; in WAL mode
 * readers still read) or `PRAGMA locking_mode=EXCLUSIVE` (nobody else can even read). Resolves
 * once the lock is observably held.
 */
export async function holdLock(db: string, how: 'begin-exclusive' | 'locking-mode-exclusive'): Promise<Shell> {
  const child = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'pipe'] });
  shells.add(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  if (how === 'begin-exclusive') {
    // .timeout: the probe below takes the write lock for an instant; without a busy timeout the
    // shell's BEGIN would fail at once if it met that instant.
    child.stdin.write('.timeout 10000\nBEGIN EXCLUSIVE;\n');
    await waitFor(() => !canWrite(db), { message: `the shell did not take the write lock (${stderr})` });
  } else {
    // The exclusive lock is taken by the first write and kept until the connection closes. It
    // can only be taken while no other connection has the database open (measured: otherwise
    // the shell gets "database is locked"); .timeout lets it wait out our own probe below.
    child.stdin.write('.timeout 10000\nPRAGMA locking_mode=EXCLUSIVE;\nBEGIN IMMEDIATE;\nCREATE TABLE IF NOT EXISTS shell_probe(x);\nCOMMIT;\n');
    await waitFor(() => !canRead(db), { message: `the shell did not take the exclusive lock (${stderr})` });
  }
  return {
    pid: child.pid!,
    send: (text) => child.stdin.write(text),
    release: async () => {
      if (how === 'begin-exclusive') child.stdin.write('COMMIT;\n');
      child.stdin.end('.quit\n');
      await exited;
      shells.delete(child);
    },
  };
}

export function killShells(): void {
  for (const s of shells) s.kill('SIGKILL');
  shells.clear();
}

function canWrite(db: string): boolean {
  const c = new Database(db, { timeout: 0 });
  try {
    c.prepare('BEGIN IMMEDIATE').run();
    c.prepare('ROLLBACK').run();
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

function canRead(db: string): boolean {
  const c = new Database(db, { timeout: 0, readonly: true });
  try {
    c.prepare('SELECT count(*) FROM sqlite_master').get();
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

/** A read-only look at the database from outside (a fresh connection, like `ckpt status`). */
export function dbRows(db: string, sql: string, ...args: unknown[]): Record<string, unknown>[] {
  const c = new Database(db, { readonly: true, timeout: 5000 });
  try {
    return c.prepare(sql).all(...args) as Record<string, unknown>[];
  } finally {
    c.close();
  }
}

export function statusOf(db: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of dbRows(db, 'SELECT status, count(*) AS n FROM file_checkpoints GROUP BY status')) out[String(r.status)] = Number(r.n);
  return out;
}

export function files(prefix: string, n: number, from = 0): DiscoveredFile[] {
  return Array.from({ length: n }, (_, i) => ({
    fileUrl: `/inbox/${prefix}${String(i + from).padStart(4, '0')}.csv`,
    fileType: 'csv',
    mtimeMs: 1_700_000_000_000,
    size: 100,
    fingerprint: `100:1700000000000:1:${prefix}${i + from}`,
  }));
}

export const STATS = { totalRows: 3, filteredRows: 0, persistedRows: 3, durationMs: 1 };

export function fallbackDirOf(db: string): string {
  return `${db}.fallback`;
}

export function journalsIn(db: string): string[] {
  try {
    return fs.readdirSync(fallbackDirOf(db)).filter((f) => f.startsWith('journal-')).map((f) => path.join(fallbackDirOf(db), f));
  } catch {
    return [];
  }
}

export function markerDirs(db: string): string[] {
  try {
    return fs.readdirSync(path.join(fallbackDirOf(db), 'claims'));
  } catch {
    return [];
  }
}

export const CORRUPTIONS = ['header', 'middle-page', 'truncated', 'random'] as const;
export type Corruption = (typeof CORRUPTIONS)[number];

/** Deterministic bytes (xorshift32), so a failing case can be replayed. */
export function noise(n: number, seed = 0x2545f491): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * The four kinds of damage of issue 4: (a) the first 100 bytes overwritten, (b) one page in the
 * middle overwritten, (c) the file truncated to half, (d) the file replaced by random bytes.
 */
export function corrupt(file: string, kind: Corruption, pageSize = 4096): void {
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r+');
  try {
    if (kind === 'header') fs.writeSync(fd, noise(100), 0, 100, 0);
    else if (kind === 'middle-page') {
      const page = Math.floor(size / pageSize / 2);
      fs.writeSync(fd, noise(pageSize, 7), 0, pageSize, page * pageSize);
    } else if (kind === 'truncated') fs.ftruncateSync(fd, Math.floor(size / 2));
    else fs.writeSync(fd, noise(size, 11), 0, size, 0);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The moved-aside database (not its -wal/-shm), if any. */
export function corruptFileOf(db: string): string | undefined {
  const dir = path.dirname(db);
  const base = path.basename(db);
  const name = fs.readdirSync(dir).find((f) => f.startsWith(`${base}.corrupt-`) && !f.endsWith('-wal') && !f.endsWith('-shm'));
  return name === undefined ? undefined : path.join(dir, name);
}
