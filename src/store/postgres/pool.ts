/**
 * The one place that builds a node-postgres pool for ckpt: connection settings, timeouts, type
 * parsing, and the error listeners without which a server restart would crash the daemon.
 */
import pg from 'pg';

export interface PoolOptions {
  /** postgres:// or postgresql:// URL. May hold a password: it is never logged or put in an error. */
  url: string;
  /** Connections at most (claim loop, heartbeats, discovery and the CLI share them). Default 4. */
  maxConnections?: number;
  /** How long to wait for a connection before the store reports itself unavailable. Default 5 s. */
  connectTimeoutMs?: number;
  /**
   * Server-side statement_timeout. A statement that waits longer (behind a stuck lock holder, on
   * an overloaded server) is cancelled and reported as unavailable. Default 60 s: a purge of
   * a million rows took well under that here.
   */
  statementTimeoutMs?: number;
  /** application_name shown in pg_stat_activity. Default "ckpt". */
  applicationName?: string;
}

/**
 * A description of the URL safe for messages: host, port and database, never the user's
 * password or the query parameters (which may hold `password=` or `sslpassword=`).
 */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname || 'localhost';
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || '(default database)';
    return `postgres ${host}${u.port ? `:${u.port}` : ''}/${db}`;
  } catch {
    return 'postgres (unparseable URL)';
  }
}

/**
 * Checks that the URL parses, without letting Node's TypeError through: its `input` property
 * holds the whole string (password included) and a logger would print it.
 */
export function checkUrl(url: string): void {
  let ok = false;
  try {
    const u = new URL(url);
    ok = u.protocol === 'postgres:' || u.protocol === 'postgresql:';
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('the PostgreSQL connection string is not a valid postgres:// or postgresql:// URL');
}

const TIMESTAMPTZ_OID = 1184;
const INT8_OID = 20;
const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (v: string) => Date | number;

/**
 * Rows come back the way FileRecord wants them: TIMESTAMPTZ as ISO-8601 UTC text with
 * milliseconds (like the SQLite store's columns), BIGINT as a JS number (counts, sizes and
 * durations stay far below 2^53). Set per pool, not on pg's global `types`, so that other users
 * of `pg` in the same process are not affected.
 */
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (format !== 'binary') {
      if (oid === TIMESTAMPTZ_OID) return (v: string) => toIso(parseTimestamptz(v));
      if (oid === INT8_OID) return (v: string) => Number(v);
    }
    return pg.types.getTypeParser(oid, format ?? 'text');
  },
} as pg.CustomTypesConfig;

function toIso(d: Date | number): string {
  const t = typeof d === 'number' ? d : d.getTime();
  return Number.isFinite(t) ? new Date(t).toISOString() : String(d);
}

export function createPool(opts: PoolOptions, onIdleError: (err: Error) => void): pg.Pool {
  checkUrl(opts.url);
  const statementTimeout = opts.statementTimeoutMs ?? 60_000;
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.maxConnections ?? 4,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
    // Idle connections are closed after 10 s: a restarted server leaves none behind for long.
    idleTimeoutMillis: 10_000,
    application_name: opts.applicationName ?? 'ckpt',
    statement_timeout: statementTimeout,
    // A client that died inside a transaction must not hold row locks (claims!) for long.
    idle_in_transaction_session_timeout: Math.max(statementTimeout, 60_000),
    // The client-side backstop for a server that vanished without closing the socket (a
    // network partition): the server-side timeout cannot fire if nothing reaches us.
    query_timeout: statementTimeout + 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types: typeParsers,
  });
  // An idle pooled connection that the server closes (restart, pg_terminate_backend) emits
  // 'error' on the pool; without a listener, Node would crash the whole daemon.
  pool.on('error', onIdleError);
  // A connection that is checked out has no pool listener. One socket read can hold the end of
  // a query (or of the start-up handshake) AND the server's FATAL 57P01 of a shutdown: the
  // parser handles both in the same tick, before any awaiting code runs, and the FATAL is
  // emitted as 'error' on the client. Seen once in the restart test as a worker crash
  // ("Unhandled 'error' event" on Client). This listener, added while the pool still holds the
  // new client, makes sure that is never unheard; the failure itself reaches the store through
  // the next query ("not queryable"), and the pool drops such a client when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  return pool;
}
