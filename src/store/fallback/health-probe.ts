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
