import fs from 'node:fs';
import path from 'node:path';
import type { SqliteDatabase } from '../open-database.js';
import { quickCheck } from '../open-database.js';
import { StoreUnavailableError, classifySqliteError, sqliteErrorCode, toStoreError } from '../sqlite-errors.js';

/**
 * Corruption, as opposed to the other "broken" codes: SQLITE_FULL (disk full), SQLITE_IOERR
 * and SQLITE_CANTOPEN say nothing about the file's content, so they are retried and never lead
 * to moving the file aside; SQLITE_CORRUPT and SQLITE_NOTADB do (measured here: header garbage
 * and random bytes give NOTADB on the first statement, a truncated file CORRUPT).
 */
export function isCorruption(err: unknown): boolean {
  const code = err instanceof StoreUnavailableError ? err.code : sqliteErrorCode(err);
  if (code === undefined) {
    const cause = err instanceof Error ? err.cause : undefined;
    return cause !== undefined && cause !== err ? isCorruption(cause) : false;
  }
  return code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB');
}

/** Run `fn` with the connection's busy timeout set to `ms`, then put the old value back. */
export function withBusyTimeout<T>(db: SqliteDatabase, ms: number, fn: () => T): T {
  const before = Number(db.pragma('busy_timeout', { simple: true }));
  db.pragma(`busy_timeout = ${ms}`);
  try {
    return fn();
  } finally {
    try {
      db.pragma(`busy_timeout = ${before}`);
    } catch {
      // a closed or broken connection: nothing to restore
    }
  }
}

/**
 * Can this connection write right now? Takes and drops the write lock without waiting
 * (busy timeout 0): a probe every second must never block the event loop for a busy timeout.
 * Returns null when writable, or the reason it is not.
 */
export function probeWritable(db: SqliteDatabase): StoreUnavailableError | null {
  try {
    withBusyTimeout(db, 0, () => {
      db.prepare('BEGIN IMMEDIATE').run();
      db.prepare('ROLLBACK').run();
    });
    return null;
  } catch (err) {
    try {
      if (db.inTransaction) db.prepare('ROLLBACK').run();
    } catch {
      // nothing to roll back
    }
    const e = toStoreError(err, 'probe');
    if (e instanceof StoreUnavailableError) return e;
    throw e;
  }
}

/**
 * Free space that a database which met SQLITE_FULL needs before a recovery is tried. A replay
 * writes a few pages plus their WAL frames; 1 MiB is far more, and far less than any disk that
 * is really in use.
 */
export const ROOM_AFTER_FULL = 1024 * 1024;

/**
 * Whether the file system holding `file` has `bytes` free for this process (root may use the
 * reserved blocks). probeWritable cannot tell a full disk: BEGIN IMMEDIATE and ROLLBACK write
 * nothing. Without this check, a daemon on a full tmpfs came back to normal mode 9 ms after
 * SQLITE_FULL and degraded again at its next write (test/hostile/disk-full.test.ts). True when
 * it cannot tell: the probe and the next write decide then.
 */
export function hasRoomFor(file: string, bytes: number): boolean {
  try {
    const st = fs.statfsSync(path.dirname(file));
    const blocks = process.getuid?.() === 0 ? st.bfree : st.bavail;
    return blocks * st.bsize >= bytes;
  } catch {
    return true;
  }
}

/** quick_check as a StoreUnavailableError('broken') or null; a lock is not an answer and is rethrown as 'locked'. */
export function checkIntegrity(db: SqliteDatabase): StoreUnavailableError | null {
  try {
    const r = withBusyTimeout(db, 0, () => quickCheck(db));
    return r.ok ? null : new StoreUnavailableError('broken', `quick_check: ${r.problem}`, 'SQLITE_CORRUPT');
  } catch (err) {
    if (classifySqliteError(err) === 'transient') return new StoreUnavailableError('locked', `quick_check: ${(err as Error).message}`, sqliteErrorCode(err));
    const e = toStoreError(err, 'quick_check');
    if (e instanceof StoreUnavailableError) return e;
    throw e;
  }
}
