/**
 * The one place that decides what a PostgreSQL (or node-postgres connection) error means for
 * ckpt, the counterpart of ../sqlite-errors.ts:
 *
 * - retry: the server rolled the transaction back to break a deadlock or a serialization
 *   conflict (40P01, 40001). Nothing was changed; run the same transaction again at once.
 * - unavailable: the server cannot be reached or is going away / starting up (connection
 *   refused or reset, SQLSTATE class 08, 57P01 admin shutdown, 57P02, 57P03, too many
 *   connections, a statement or lock timeout, a read-only standby after a fail-over). It is
 *   expected to come back without anyone doing anything: StoreUnavailableError('locked'), the
 *   same kind as a locked SQLite file, so the fallback layer goes degraded and retries.
 * - broken: the server answers but will not serve ckpt until an operator acts (wrong password,
 *   database or schema missing, no privilege, disk full, corruption, a TLS set-up that cannot
 *   work): StoreUnavailableError('broken'), like a corrupt SQLite file.
 * - other: a bug or misuse (constraint violation, SQL error): surface it as it is.
 */
import { StoreUnavailableError } from '../sqlite-errors.js';

export type PgErrorClass = 'retry' | 'unavailable' | 'broken' | 'other';

/** SQLSTATEs after which the same transaction may simply be run again. */
const RETRY_STATES = new Set(['40001', '40P01']);

const UNAVAILABLE_STATES = new Set([
  '57P01', // admin_shutdown: pg_ctl stop -m fast, or pg_terminate_backend()
  '57P02', // crash_shutdown: another backend crashed, the server restarts
  '57P03', // cannot_connect_now: starting up, shutting down, in recovery
  '57P05', // idle_session_timeout
  '57014', // query_canceled: statement_timeout (a hung lock holder, an overloaded server)
  '55P03', // lock_not_available: lock_timeout
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
  '53200', // out_of_memory
  '25006', // read_only_sql_transaction: connected to a standby after a fail-over
  '25P03', // idle_in_transaction_session_timeout
]);

const BROKEN_STATES = new Set([
  '28000', // invalid_authorization_specification (pg_hba.conf rejects us)
  '28P01', // invalid_password
  '3D000', // invalid_catalog_name: the database does not exist
  '3F000', // invalid_schema_name
  '42501', // insufficient_privilege
  '53100', // disk_full
  '58030', // io_error
  'XX001', // data_corrupted
  'XX002', // index_corrupted
]);

/** Node's socket errors (the `code` of a system error while connecting or talking). */
const UNAVAILABLE_SYSCODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENOENT', // a unix socket path that is not there (server not running)
]);

/** Certificate problems: retrying the same connection will fail the same way. */
const BROKEN_SYSCODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * node-postgres reports a lost or timed-out connection as a plain Error without a code; these
 * are its messages (pg 8.23: lib/client.js, pg-pool/index.js).
 */
const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i, // "...unexpectedly", "...due to connection timeout"
  /timeout exceeded when trying to connect/i, // the pool's connectionTimeoutMillis
  /Query read timeout/i, // query_timeout: the server stopped answering
  /Client has encountered a connection error and is not queryable/i,
  /server closed the connection unexpectedly/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
];

const BROKEN_MESSAGES = [
  /^SASL:/, // SCRAM needs a password and none was given
  /password authentication failed/i,
  /does not support SSL/i,
  /no pg_hba\.conf entry/i,
];

/** The error's own code, or that of the first inner error (AggregateError from a dual-stack connect). */
export function pgErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const inner = (e as { errors?: unknown }).errors;
    e = Array.isArray(inner) && inner.length > 0 ? inner[0] : (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A five-character SQLSTATE (as opposed to a Node system error code). */
function isSqlState(code: string): boolean {
  return /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('E');
}

export function classifyPgError(err: unknown): PgErrorClass {
  const code = pgErrorCode(err);
  if (code !== undefined) {
    if (RETRY_STATES.has(code)) return 'retry';
    if (UNAVAILABLE_STATES.has(code) || UNAVAILABLE_SYSCODES.has(code)) return 'unavailable';
    if (BROKEN_STATES.has(code) || BROKEN_SYSCODES.has(code)) return 'broken';
    // Class 08: connection exception (08000, 08003, 08006, 08001 ...).
    if (isSqlState(code) && code.startsWith('08')) return 'unavailable';
    if (isSqlState(code)) return 'other';
  }
  const msg = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  if (UNAVAILABLE_MESSAGES.some((re) => re.test(msg))) return 'unavailable';
  if (BROKEN_MESSAGES.some((re) => re.test(msg))) return 'broken';
  return 'other';
}

/**
 * True when the connection that produced `err` must not go back to the pool: anything but a
 * plain SQL error may have left it half-way through a protocol exchange.
 */
export function poisonsConnection(err: unknown): boolean {
  const cls = classifyPgError(err);
  return cls === 'unavailable' || cls === 'broken';
}

/**
 * Wrap a thrown error: unavailable/broken become StoreUnavailableError ('locked'/'broken'),
 * others pass through unchanged. The message never holds the connection string (node-postgres
 * does not put it in errors; `what` is written by the store and holds no secret either).
 */
export function toPgStoreError(err: unknown, what: string): unknown {
  if (err instanceof StoreUnavailableError) return err;
  const cls = classifyPgError(err);
  if (cls !== 'unavailable' && cls !== 'broken') return err;
  const code = pgErrorCode(err);
  const msg = err instanceof Error ? err.message || err.constructor.name : String(err);
  return new StoreUnavailableError(cls === 'unavailable' ? 'locked' : 'broken', `${what}: PostgreSQL ${code ?? 'error'}: ${msg}`, code, {
    cause: err,
  });
}
