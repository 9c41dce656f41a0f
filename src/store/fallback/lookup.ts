import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { type SqliteDatabase, openDatabase } from '../open-database.js';
import { classifySqliteError } from '../sqlite-errors.js';
import { toRecord } from '../sqlite-store.js';
import type { FileRecord } from '../types.js';
import { withBusyTimeout } from './health-probe.js';

export interface Looked {
  row: FileRecord | null;
  /** A purge tombstone: this version was handled and its row deleted. */
  tomb: { fingerprint: string; version: number } | null;
  /**
   * 'assumed-new' (PostgreSQL, server unreachable): nothing could be read, and the file is new to
   * this process (first seen while degraded); see postgres/fallback-primary.ts.
   */
  source: 'database' | 'copy' | 'assumed-new';
}

/**
 * What the database says about a file while ckpt cannot write to it: the fallback asks before
 * it hands a file out, so a completed file is never run again.
 *
 * 1. The database itself, read with busy timeout 0. Under another connection's write lock
 *    (the sqlite3 shell in `BEGIN EXCLUSIVE`) reads in WAL mode still work (measured 0.1 ms).
 * 2. When even reads fail (another process took `PRAGMA locking_mode=EXCLUSIVE`: every read
 *    gets SQLITE_BUSY, measured), a private copy of the database file and its -wal: file locks
 *    do not stop read(2), and opening the copy replays the -wal, so it holds every transaction
 *    committed up to the copy. The copy is made again whenever the file or its -wal changed
 *    since (size, mtime, inode; two stats a look-up): the lock may have been let go and taken
 *    again, and another ckpt process may have completed files in between. A lock holder that
 *    writes all the time would make every look-up copy (a 55 MB file took 20-49 ms here); a
 *    shell or a backup tool, the usual holders, does not.
 * 3. Neither (the file is corrupt and not yet salvaged): unavailable, and nothing is handed out.
 */
export class Lookup {
  private copy: SqliteDatabase | null = null;
  /** The file and -wal as they were when the copy was taken (see signature()). */
  private copiedFrom = '';
  private copyFailedAt = 0;
  private readonly copyDir: string;

  constructor(
    private readonly dbFile: string,
    workRoot: string,
    private readonly onCopy: (info: { ms: number; bytes: number } | { error: string }) => void = () => {},
  ) {
    this.copyDir = path.join(workRoot, `lookup-${process.pid}`);
  }

  /** null: nobody can tell (the caller must not hand the file out). */
  get(primary: SqliteDatabase | null, fileUrl: string, now: number): Looked | null {
    if (primary) {
      try {
        return withBusyTimeout(primary, 0, () => ({ ...read(primary, fileUrl), source: 'database' as const }));
      } catch (err) {
        if (classifySqliteError(err) !== 'transient') return null;
      }
    }
    const copy = this.ensureCopy(now);
    if (!copy) return null;
    try {
      return { ...read(copy, fileUrl), source: 'copy' };
    } catch {
      return null;
    }
  }

  /** Claimable rows (pending, failed, or processing with an expired lease), oldest first. */
  claimable(primary: SqliteDatabase | null, nowIso: string, limit: number): FileRecord[] | null {
    const q = (db: SqliteDatabase) => {
      // Same literal conditions as the partial indexes fc_ready and fc_leases.
      const ready = db.prepare(`SELECT * FROM file_checkpoints WHERE status IN ('pending', 'failed') AND due_at <= ? ORDER BY due_at LIMIT ?`).all(nowIso, limit);
      const expired = db.prepare(`SELECT * FROM file_checkpoints WHERE status = 'processing' AND due_at <= ? ORDER BY due_at LIMIT ?`).all(nowIso, limit);
      return [...ready, ...expired].map((r) => toRecord(r as Record<string, unknown>));
    };
    if (primary) {
      try {
        return withBusyTimeout(primary, 0, () => q(primary));
      } catch (err) {
        if (classifySqliteError(err) !== 'transient') return null;
      }
    }
    const copy = this.ensureCopy(Date.now());
    if (!copy) return null;
    try {
      return q(copy);
    } catch {
      return null;
    }
  }

  get usingCopy(): boolean {
    return this.copy !== null;
  }

  private ensureCopy(now: number): SqliteDatabase | null {
    if (this.copy) {
      if (this.signature() === this.copiedFrom) return this.copy;
      // Written since: a stale copy could show a completed file as pending.
      this.dropCopy();
    }
    // A failed copy (corrupt file, torn copy) is not retried more than every 5 s.
    if (now - this.copyFailedAt < 5_000) return null;
    const t0 = Date.now();
    try {
      // Before copying: a write during the copy makes the next look-up copy again.
      const sig = this.signature();
      fs.rmSync(this.copyDir, { recursive: true, force: true });
      fs.mkdirSync(this.copyDir, { recursive: true, mode: 0o700 });
      const target = path.join(this.copyDir, 'lookup.db');
      fs.copyFileSync(this.dbFile, target);
      let bytes = fs.statSync(target).size;
      try {
        fs.copyFileSync(`${this.dbFile}-wal`, `${target}-wal`);
        bytes += fs.statSync(`${target}-wal`).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      this.copy = openDatabase(target, { allowNetworkFs: true, busyTimeoutMs: 0 });
      this.copiedFrom = sig;
      this.onCopy({ ms: Date.now() - t0, bytes });
      return this.copy;
    } catch (err) {
      this.copyFailedAt = now;
      this.onCopy({ error: (err as Error).message });
      this.dropCopy();
      return null;
    }
  }

  /** Size, mtime and inode of the database file and its -wal. */
  private signature(): string {
    const part = (f: string) => {
      try {
        const st = fs.statSync(f);
        return `${st.size}:${st.mtimeMs}:${st.ino}`;
      } catch {
        return '-';
      }
    };
    return `${part(this.dbFile)}|${part(`${this.dbFile}-wal`)}`;
  }

  /** Forget the copy (the database is usable again). */
  dropCopy(): void {
    try {
      this.copy?.close();
    } catch {
      // ignore
    }
    this.copy = null;
    fs.rmSync(this.copyDir, { recursive: true, force: true });
  }
}

type Stmt = ReturnType<SqliteDatabase['prepare']>;
/** Prepared once per connection: a discovery scan while degraded looks up every file. */
const statements = new WeakMap<SqliteDatabase, { row: Stmt; tomb: Stmt }>();

function read(db: SqliteDatabase, fileUrl: string): Omit<Looked, 'source'> {
  let s = statements.get(db);
  if (!s) {
    s = {
      row: db.prepare('SELECT * FROM file_checkpoints WHERE file_url = ?'),
      tomb: db.prepare('SELECT fingerprint, version FROM file_tombstones WHERE file_url = ?'),
    };
    statements.set(db, s);
  }
  const r = s.row.get(fileUrl) as Record<string, unknown> | undefined;
  const t = r ? undefined : (s.tomb.get(fileUrl) as { fingerprint: string; version: number } | undefined);
  return { row: r ? toRecord(r) : null, tomb: t ?? null };
}

/** The log lines about look-up copies: a copy failed, or the database cannot even be read. */
export function logCopies(log: Logger | undefined): (info: { ms: number; bytes: number } | { error: string }) => void {
  return (info) =>
    'error' in info
      ? log?.warn({ error: info.error }, 'could not copy the database for look-ups while it is locked')
      : log?.warn({ ms: info.ms, bytes: info.bytes }, 'the database cannot even be read (locking_mode=EXCLUSIVE elsewhere?): looking files up in a private copy');
}
