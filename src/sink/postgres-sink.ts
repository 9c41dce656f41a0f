/**
 * Exactly-once writes into PostgreSQL (the sink; it may be the ledger's database too):
 *
 *   const sink = await PostgresSink.open({ url: process.env.SINK_URL });
 *   export default async function (file, ctx) {
 *     const rows = parse(file);
 *     return sink.once(ctx, async (tx) => {
 *       for (const r of rows) await tx.query('INSERT INTO readings (sensor, value) VALUES ($1, $2)', [r.sensor, r.value]);
 *       return { total: rows.length, filtered: 0, persisted: rows.length };
 *     });
 *   }
 *
 * once() takes one connection from its pool and runs, on it: BEGIN; INSERT the run's key into
 * ckpt_applied ON CONFLICT DO NOTHING; if the key was there, ROLLBACK and return the stats
 * recorded then; otherwise `write(tx)`, the stats next to the key, COMMIT. Inserting the key
 * first serialises two runs of one key: the second one's INSERT waits on the first one's
 * uncommitted key (the primary key's index), and finds it once that commits. `tx` stops
 * working when `write` has settled, so a query that escaped it fails instead of landing
 * outside the transaction.
 */
import pg from 'pg';
import type { RunStats } from '../run/stats-line.js';
import { LOCK_NAMESPACE, quoteSchema } from '../store/postgres/migrate.js';
import { checkUrl } from '../store/postgres/pool.js';
import {
  type AppliedRecord,
  DEFAULT_SINK_TABLE,
  Liveness,
  type SinkResult,
  type SinkRun,
  abortedError,
  checkRun,
  checkTableName,
  parseStats,
  statsFrom,
} from './common.js';

export interface PostgresSinkOptions {
  /** postgres:// URL of the sink database; or `pool`. */
  url?: string;
  /** A pool the caller made (and ends). */
  pool?: pg.Pool;
  /** Schema of ckpt's table (default public; created if missing). */
  schema?: string;
  /** Name of ckpt's table (default ckpt_applied). */
  table?: string;
  /**
   * lock_timeout of the transaction: how long a statement waits for a lock, e.g. a second run
   * of one key behind the first one's uncommitted key (default 30 s: longer than a lease, so
   * a run stuck behind a stopped worker does not fail).
   */
  lockTimeoutMs?: number;
  /** Connections in the pool once() makes from `url` (default 4). */
  maxConnections?: number;
}

/** What the write function receives: one connection, inside the open transaction only. */
export interface PostgresSinkTx {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export type PostgresSinkWrite = (tx: PostgresSinkTx) => Promise<RunStats> | RunStats;

interface AppliedRow {
  idempotency_key: string;
  file_url: string;
  version: string | number;
  attempt: number | null;
  worker_id: string | null;
  applied_at: Date;
  stats: unknown;
}

export class PostgresSink {
  private readonly t: string;

  private constructor(
    readonly pool: pg.Pool,
    private readonly ownsPool: boolean,
    private readonly schema: string,
    table: string,
    private readonly lockTimeoutMs: number,
  ) {
    this.t = `${quoteSchema(schema)}.${checkTableName(table)}`;
  }

  /** Connects and creates ckpt's table (several processes may do this at once). */
  static async open(opts: PostgresSinkOptions): Promise<PostgresSink> {
    if (!opts.pool && !opts.url) throw new TypeError('PostgresSink.open: give url or pool');
    if (opts.url) checkUrl(opts.url);
    const pool = opts.pool ?? new pg.Pool({ connectionString: opts.url, max: opts.maxConnections ?? 4 });
    // An idle connection the server closed must not crash the process.
    if (!opts.pool) pool.on('error', () => undefined);
    const lockTimeoutMs = opts.lockTimeoutMs ?? 30_000;
    if (!Number.isSafeInteger(lockTimeoutMs) || lockTimeoutMs < 0) throw new TypeError('PostgresSink.open: lockTimeoutMs must be an integer >= 0');
    const sink = new PostgresSink(pool, !opts.pool, opts.schema ?? 'public', opts.table ?? DEFAULT_SINK_TABLE, lockTimeoutMs);
    try {
      await sink.createTable();
    } catch (err) {
      if (sink.ownsPool) await pool.end();
      throw err;
    }
    return sink;
  }

  /**
   * Runs `write` and records the run's key in one transaction, unless the key is there already.
   * Resolves to the stats to return from the handler (the first run's, when already applied);
   * rejects when `write` throws or returns no valid stats, when the run was aborted before the
   * commit, or on a database error. Nothing is committed then.
   */
  async once(run: SinkRun, write: PostgresSinkWrite): Promise<SinkResult> {
    checkRun(run, write);
    if (run.signal?.aborted) throw abortedError(run);
    const client = await this.pool.connect();
    const live = new Liveness('the sink transaction (tx)');
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL lock_timeout = ${this.lockTimeoutMs}`);
      const ins = await client.query<{ applied_at: Date }>(
        `INSERT INTO ${this.t} (idempotency_key, file_url, version, attempt, worker_id, applied_at)
         VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (idempotency_key) DO NOTHING RETURNING applied_at`,
        [run.idempotencyKey, run.fileUrl, run.version, run.attempt ?? null, run.workerId ?? null],
      );
      if (ins.rowCount === 0) {
        const first = await this.read(client, run.idempotencyKey);
        await client.query('ROLLBACK');
        return { ...first!.stats, alreadyApplied: true, appliedAt: first!.appliedAt, appliedByAttempt: first!.attempt };
      }
      const tx: PostgresSinkTx = Object.freeze({
        query: <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
          live.check();
          return client.query<R>(text, values);
        },
      });
      let out: unknown;
      try {
        out = await write(tx);
      } finally {
        live.end();
      }
      const stats = statsFrom(out);
      await client.query(`UPDATE ${this.t} SET stats = $2 WHERE idempotency_key = $1`, [run.idempotencyKey, JSON.stringify(stats)]);
      // Not the guard (the key is), but a run whose lease is gone need not race the one that took over.
      if (run.signal?.aborted) throw abortedError(run);
      await client.query('COMMIT');
      return { ...stats, alreadyApplied: false, appliedAt: ins.rows[0]!.applied_at.toISOString(), appliedByAttempt: run.attempt ?? null };
    } catch (err) {
      live.end();
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e));
      });
      throw err;
    } finally {
      // A connection whose ROLLBACK failed is in an unknown state: the pool drops it.
      client.release(broken);
    }
  }

  /** The sink's record of a key, or undefined. */
  async applied(idempotencyKey: string): Promise<AppliedRecord | undefined> {
    return this.read(this.pool, idempotencyKey);
  }

  /** Ends the pool if open() made it. */
  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end();
  }

  private async read(c: pg.Pool | pg.PoolClient, key: string): Promise<AppliedRecord | undefined> {
    const r = await c.query<AppliedRow>(`SELECT * FROM ${this.t} WHERE idempotency_key = $1`, [key]);
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      idempotencyKey: row.idempotency_key,
      fileUrl: row.file_url,
      version: Number(row.version),
      attempt: row.attempt,
      workerId: row.worker_id,
      appliedAt: new Date(row.applied_at).toISOString(),
      stats: parseStats(row.stats),
    };
  }

  private async createTable(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE of the same name (a
      // unique violation on the catalog): daemons starting together take turns.
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext('sink:' || $2))", [LOCK_NAMESPACE, this.schema]);
      // CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege even when the schema exists.
      const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema]);
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${quoteSchema(this.schema)}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.t} (
           idempotency_key TEXT PRIMARY KEY,
           file_url        TEXT NOT NULL,
           version         BIGINT NOT NULL,
           attempt         INTEGER,
           worker_id       TEXT,
           applied_at      TIMESTAMPTZ NOT NULL,
           stats           JSONB
         )`,
      );
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}
