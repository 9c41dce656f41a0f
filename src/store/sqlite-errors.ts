/**
 * The one place that decides what a SQLite error means for ckpt.
 *
 * - transient: another connection holds the lock. Retry with backoff; only a lock that lasts
 *   longer than `lockTimeoutMs` is a fault (two processes in tight loops starve each other for
 *   seconds without anything being wrong: measured splits of 49,616/384).
 * - broken: the file itself cannot be used (corrupt, not a database, I/O error, disk full,
 *   cannot open). Retrying the same statement will not help; the fallback takes over.
 * - other: a bug or misuse (constraint, SQL error): surface it.
 */
export type SqliteErrorClass = 'transient' | 'broken' | 'other';

const BROKEN_PREFIXES = ['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_CANTOPEN'];

export function sqliteErrorCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

export function classifySqliteError(err: unknown): SqliteErrorClass {
  const code = sqliteErrorCode(err);
  if (code === undefined) return 'other';
  // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_RECOVERY, SQLITE_BUSY_TIMEOUT, SQLITE_LOCKED*
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'transient';
  if (BROKEN_PREFIXES.some((p) => code.startsWith(p))) return 'broken';
  return 'other';
}

/** Why the store could not do what was asked; the fallback layer switches on `kind`. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(
    readonly kind: 'locked' | 'broken',
    message: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Wrap a thrown SQLite error: transient/broken become StoreUnavailableError, others pass through. */
export function toStoreError(err: unknown, what: string): unknown {
  const cls = classifySqliteError(err);
  if (cls === 'other') return err;
  const code = sqliteErrorCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(
    cls === 'transient' ? 'locked' : 'broken',
    `${what}: ${code ?? 'error'}: ${msg}`,
    code,
    { cause: err },
  );
}
