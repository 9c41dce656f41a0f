/**
 * Exactly-once writes into a SQLite database file (the sink; not ckpt's ledger, though it may
 * be the same file):
 *
 *   const sink = SqliteSink.open('/var/lib/app/readings.db');
 *   export default async function (file, ctx) {
 *     const rows = parse(file);                         // read and parse outside the transaction
 *     return sink.once(ctx, (tx) => {                   // synchronous: see below
 *       const ins = tx.prepare('INSERT INTO readings (sensor, value) VALUES (?, ?)');
 *       for (const r of rows) ins.run(r.sensor, r.value);
 *       return { total: rows.length, filtered: 0, persisted: rows.length };
 *     });
 *   }
 *
 * once() runs BEGIN IMMEDIATE; inserts the run's key into ckpt_applied (ON CONFLICT DO NOTHING);
 * if the key was there, rolls back and returns the stats recorded then; otherwise runs `write`,
 * records its stats next to the key and commits. The rows and the key commit together or not
 * at all, and IMMEDIATE takes the write lock first, so two runs of one key are serialised:
 * the second finds the first one's key.
 *
 * Why `write` must be synchronous: better-sqlite3 runs a statement to completion on the calling
 * thread and has no way to keep a transaction open across an `await` (the event loop would
 * run other handlers' statements inside it). A write function that returns a promise is refused
 * and its transaction rolled back; `tx` stops working the moment write() returns, so statements
 * after an `await` throw instead of being committed outside the transaction.
 *
 * Waiting for the lock: every wait inside SQLite blocks the daemon's event loop, lease renewals
 * included. The connection's busy timeout is kept to a 20 ms slice (as the daemon's own store
 * does) and BEGIN IMMEDIATE is retried asynchronously until `lockTimeoutMs`.
 */
import Database from 'better-sqlite3';
import { classifySqliteError } from '../store/sqlite-errors.js';
import type { RunStats } from '../run/stats-line.js';
import {
  type AppliedRecord,
  DEFAULT_SINK_TABLE,
  Liveness,
  type SinkResult,
  type SinkRun,
  abortedError,
  checkRun,
  checkTableName,
  isThenable,
  parseStats,
  statsFrom,
} from './common.js';

export interface SqliteSinkOptions {
  /** Name of ckpt's table in the sink (default ckpt_applied). */
  table?: string;
  /**
   * How long once() waits for another connection's write lock before it throws (default 30 s:
   * longer than a lease, so a run stuck behind a stopped holder of the lock does not fail).
   */
  lockTimeoutMs?: number;
}

/** Statements inside the transaction; each throws once the transaction has ended. */
export interface SqliteSinkStatement {
  run(...params: unknown[]): Database.RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** What the write function receives: the sink connection, inside the open transaction only. */
export interface SqliteSinkTx {
  prepare(sql: string): SqliteSinkStatement;
  run(sql: string, ...params: unknown[]): Database.RunResult;
  get(sql: string, ...params: unknown[]): unknown;
  all(sql: string, ...params: unknown[]): unknown[];
}

/** Synchronous: it runs inside one SQLite transaction (see the file header). */
export type SqliteSinkWrite = (tx: SqliteSinkTx) => RunStats;

/** 20 ms, as the daemon's store: a wait inside SQLite blocks the whole daemon. */
const BUSY_SLICE_MS = 20;
const RETRY_PAUSE_MS = 25;

interface AppliedRow {
  idempotency_key: string;
  file_url: string;
  version: number;
  attempt: number | null;
  worker_id: string | null;
  applied_at: string;
  stats: string | null;
}

export class SqliteSink {
  private readonly q: string;
  private readonly lockTimeoutMs: number;
  private readonly statements = new Map<string, Database.Statement>();

  /** Opens (or creates) the sink database file, in WAL mode, and creates ckpt's table. */
  static open(file: string, opts: SqliteSinkOptions = {}): SqliteSink {
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      return new SqliteSink(db, opts);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Uses a connection the caller opened (and closes); creates ckpt's table in it. */
  constructor(
    readonly db: Database.Database,
    opts: SqliteSinkOptions = {},
  ) {
    this.q = checkTableName(opts.table ?? DEFAULT_SINK_TABLE);
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 30_000;
    db.pragma(`busy_timeout = ${BUSY_SLICE_MS}`);
    this.withLock(() =>
      db.exec(
        `CREATE TABLE IF NOT EXISTS ${this.q} (
           idempotency_key TEXT PRIMARY KEY,
           file_url        TEXT NOT NULL,
           version         INTEGER NOT NULL,
           attempt         INTEGER,
           worker_id       TEXT,
           applied_at      TEXT NOT NULL,
           stats           TEXT
         )`,
      ),
    );
  }

  /**
   * Runs `write` and records the run's key in one transaction, unless the key is there already.
   * Resolves to the stats to return from the handler (the first run's, when already applied);
   * rejects when `write` throws or returns no valid stats, when the run was aborted before the
   * commit, or when the lock did not come within lockTimeoutMs. Nothing is committed then.
   */
  async once(run: SinkRun, write: SqliteSinkWrite): Promise<SinkResult> {
    checkRun(run, write);
    const deadline = Date.now() + this.lockTimeoutMs;
    for (;;) {
      if (run.signal?.aborted) throw abortedError(run);
      try {
        return this.attempt(run, write);
      } catch (err) {
        if (classifySqliteError(err) !== 'transient' || Date.now() >= deadline) throw err;
      }
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    }
  }

  /** The sink's record of a key, or undefined. */
  applied(idempotencyKey: string): AppliedRecord | undefined {
    const row = this.stmt(`SELECT * FROM ${this.q} WHERE idempotency_key = ?`).get(idempotencyKey) as AppliedRow | undefined;
    return row && toRecord(row);
  }

  close(): void {
    this.db.close();
  }

  private attempt(run: SinkRun, write: SqliteSinkWrite): SinkResult {
    const db = this.db;
    db.exec('BEGIN IMMEDIATE');
    const live = new Liveness('the sink transaction (tx)');
    try {
      const appliedAt = new Date().toISOString();
      const fresh = this.stmt(
        `INSERT INTO ${this.q} (idempotency_key, file_url, version, attempt, worker_id, applied_at)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
      ).run(run.idempotencyKey, run.fileUrl, run.version, run.attempt ?? null, run.workerId ?? null, appliedAt).changes === 1;
      if (!fresh) {
        const first = this.applied(run.idempotencyKey)!;
        db.exec('ROLLBACK');
        return { ...first.stats, alreadyApplied: true, appliedAt: first.appliedAt, appliedByAttempt: first.attempt };
      }
      const out = write(this.txFor(live));
      live.end();
      if (isThenable(out)) {
        // Its continuation's statements throw (tx is dead); keep that from being unhandled.
        Promise.resolve(out).catch(() => undefined);
        throw new TypeError(
          'sink.once: the SQLite write function must be synchronous (better-sqlite3 cannot keep a transaction open across await): read and parse before once(), write inside it',
        );
      }
      const stats = statsFrom(out);
      this.stmt(`UPDATE ${this.q} SET stats = ? WHERE idempotency_key = ?`).run(JSON.stringify(stats), run.idempotencyKey);
      // A synchronous write cannot see its signal change; this catches an abort that came
      // while once() waited for the lock.
      if (run.signal?.aborted) throw abortedError(run);
      db.exec('COMMIT');
      return { ...stats, alreadyApplied: false, appliedAt, appliedByAttempt: run.attempt ?? null };
    } catch (err) {
      live.end();
      if (db.inTransaction) db.exec('ROLLBACK');
      throw err;
    }
  }

  private txFor(live: Liveness): SqliteSinkTx {
    const prepare = (sql: string): SqliteSinkStatement => {
      live.check();
      const st = this.stmt(sql);
      return {
        run: (...p) => (live.check(), st.run(...p)),
        get: (...p) => (live.check(), st.get(...p)),
        all: (...p) => (live.check(), st.all(...p)),
      };
    };
    return Object.freeze({
      prepare,
      run: (sql: string, ...p: unknown[]) => prepare(sql).run(...p),
      get: (sql: string, ...p: unknown[]) => prepare(sql).get(...p),
      all: (sql: string, ...p: unknown[]) => prepare(sql).all(...p),
    });
  }

  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** Schema set-up at open: the same slice-and-retry as once(), but synchronous (start-up only). */
  private withLock(fn: () => void): void {
    const deadline = Date.now() + this.lockTimeoutMs;
    for (;;) {
      try {
        return fn();
      } catch (err) {
        if (classifySqliteError(err) !== 'transient' || Date.now() >= deadline) throw err;
      }
    }
  }
}

function toRecord(r: AppliedRow): AppliedRecord {
  return {
    idempotencyKey: r.idempotency_key,
    fileUrl: r.file_url,
    version: r.version,
    attempt: r.attempt,
    workerId: r.worker_id,
    appliedAt: r.applied_at,
    stats: parseStats(r.stats),
  };
}
