import type pg from 'pg';
import { DEFAULT_RETRY } from '../retry-policy.js';
import { SWEEP_BATCH, expiryStatus, failureAfterAction, failureCompletedAt, failureOutcome, leaseExpiredError, planFailure } from '../rules/transitions.js';
import { type Row, durationOf, movedBackLabel, toExpired, toAttempt, toClaim, toRecord, toTombstone, toWorker, tombstoneLiftedLabel } from '../record.js';
import { iso } from '../time.js';
import { byBacklog, toBacklogGroup, toInFlight, toRecentFailure } from '../activity.js';
import type {
  Activity,
  ActivityQuery,
  AfterActionDone,
  AttemptRecord,
  ChangePolicy,
  CheckpointStore,
  Claim,
  ClaimOptions,
  ClaimRef,
  Completion,
  DiscoverResult,
  DiscoverOptions,
  DiscoveredFile,
  FailResult,
  Failure,
  FileRecord,
  ListQuery,
  PurgeQuery,
  TombstoneExpiryQuery,
  RequeueQuery,
  RetryPolicy,
  Status,
  StoreStats,
  Tombstone,
  WorkerInfo,
  WorkerRecord,
  WriteResult,
} from '../types.js';
import { cmp, discoverBatch } from './discover.js';
import { currentVersion, migrate, quoteSchema } from './migrate.js';
import { classifyPgError, poisonsConnection, toPgStoreError } from './pg-errors.js';
import { type PoolOptions, createPool, describeTarget } from './pool.js';
import { type Statement, type Statements, statements } from './statements.js';

export interface PostgresStoreOptions extends PoolOptions {
  /** Schema holding ckpt's tables; created by the first migration if missing. Default "public". */
  schema?: string;
  retry?: RetryPolicy;
  onChange?: ChangePolicy;
  random?: () => number;
  /**
   * Called when an idle pooled connection fails (the server restarted or killed it). The pool
   * drops the connection by itself and opens a new one when needed; this is for logging only.
   * The error never holds the connection string.
   */
  onConnectionError?: (err: Error) => void;
}

/** Deadlocks between two hosts' batched writes are resolved by the server; run the loser again. */
const CONFLICT_RETRIES = 8;

/**
 * The PostgreSQL checkpoint store: the same schema, statuses, transitions and token checks as
 * SqliteStore (see the transition table there), for several daemons on several hosts sharing
 * one database. The transitions and what each records are ../rules/transitions.ts.
 *
 * How it differs from SQLite, and why:
 * - A claim is one `UPDATE ... WHERE file_url = ANY (SELECT ... FOR UPDATE SKIP LOCKED)`
 *   statement: concurrent claimers (other processes, other hosts) skip each other's locked rows
 *   instead of queueing behind one write lock.
 * - Batched writes (complete, release, heartbeat) are one statement each over arrays; discover
 *   reads once and writes only what changed.
 * - The expired-lease sweep runs only when the claim statement's probe finds an expired lease:
 *   then sweep and claim share one transaction, as in SQLite. `onExpired` is called while the
 *   expired rows are locked, before they become claimable, but it can only act on THIS host:
 *   a lease that ran out on another host belongs to a process that ckpt cannot see or kill.
 *   Across hosts the lease and the claim token are the protection: the old holder can no
 *   longer write anything for the file (its handler may still be running, see docs/postgresql.md).
 * - `now` always comes from the caller, never from the server clock (as in SQLite).
 * - Errors: see pg-errors.ts. An unreachable or restarting server is StoreUnavailableError
 *   ('locked'), like a locked SQLite file, so the fallback layer treats both alike.
 */
export class PostgresStore implements CheckpointStore {
  readonly kind = 'postgres' as const;
  readonly schema: string;
  /** host:port/db, without user or password: safe to log. */
  readonly target: string;
  readonly pool: pg.Pool;
  private readonly retry: RetryPolicy;
  private readonly onChange: ChangePolicy;
  private readonly random: () => number;
  private readonly s: Statements;
  private readonly qs: string;
  private ready: Promise<void> | null = null;
  private closed = false;

  /**
   * Builds the store without touching the server: the schema is migrated on first use (and
   * again on the next call if the server was unreachable). Use PostgresStore.connect() to
   * migrate up front and fail fast.
   */
  constructor(opts: PostgresStoreOptions) {
    this.schema = opts.schema ?? 'public';
    this.qs = quoteSchema(this.schema);
    this.target = describeTarget(opts.url);
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.onChange = opts.onChange ?? 'reprocess';
    this.random = opts.random ?? Math.random;
    this.s = statements(this.qs);
    const onConnectionError = opts.onConnectionError ?? (() => undefined);
    this.pool = createPool(opts, (err) => onConnectionError(err));
  }

  /** Open and migrate: throws StoreUnavailableError when the server cannot be used. */
  static async connect(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(opts);
    try {
      await store.ensureReady();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** Runs the migrations once; a failed attempt is forgotten so the next call tries again. */
  ensureReady(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`PostgreSQL store ${this.target} is closed`));
    this.ready ??= this.withClient('migrate', async (c) => {
      await migrate(c, this.schema);
    }).catch((err: unknown) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  /**
   * The schema's migration version without changing anything: null when ckpt has never run
   * on it (no migrations table). The CLI asks before it opens the store, so that `ckpt status`
   * pointed at the wrong schema says so instead of creating an empty ledger there.
   */
  schemaVersion(): Promise<number | null> {
    if (this.closed) return Promise.reject(new Error(`PostgreSQL store ${this.target} is closed`));
    return this.withClient('schema version', (c) => currentVersion(c, this.schema, this.qs));
  }

  // --- plumbing ---------------------------------------------------------------------------

  /** Check out a connection, run `fn`, give it back. Errors come out classified (pg-errors.ts). */
  private async withClient<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw toPgStoreError(err, `${what} (${this.target})`);
    }
    let failure: unknown = null;
    try {
      return await fn(client);
    } catch (err) {
      failure = err;
      throw toPgStoreError(err, `${what} (${this.target})`);
    } finally {
      // A connection that saw a connection-level error is destroyed, not given back to the pool.
      client.release(failure !== null && poisonsConnection(failure) ? (failure as Error) : undefined);
    }
  }

  /**
   * Run `fn` as one transaction (READ COMMITTED), again from the start after a deadlock.
   * `first` (plain SQL without parameters, e.g. an advisory lock) is sent with BEGIN in the
   * same round trip.
   */
  private async tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>, first?: string): Promise<T> {
    await this.ensureReady();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.withClient(what, async (c) => {
          await c.query(first === undefined ? 'BEGIN' : `BEGIN; ${first}`);
          try {
            const out = await fn(c);
            await c.query('COMMIT');
            return out;
          } catch (err) {
            // After a lost connection the rollback fails too; the server rolls back by itself.
            await c.query('ROLLBACK').catch(() => undefined);
            throw err;
          }
        });
      } catch (err) {
        if (classifyPgError(err) !== 'retry' || attempt >= CONFLICT_RETRIES) throw err;
        await conflictPause(attempt);
      }
    }
  }

  /** One statement, outside an explicit transaction (a single statement is atomic anyway). */
  private async one(what: string, st: Statement, values: unknown[]): Promise<pg.QueryResult<Row>> {
    await this.ensureReady();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.withClient(what, (c) => c.query<Row>({ name: st.name, text: st.text, values }));
      } catch (err) {
        if (classifyPgError(err) !== 'retry' || attempt >= CONFLICT_RETRIES) throw err;
        await conflictPause(attempt);
      }
    }
  }

  // --- discover ---------------------------------------------------------------------------

  async discover(all: readonly DiscoveredFile[], now: number, opts?: DiscoverOptions): Promise<DiscoverResult> {
    // Checked once, before the round trips (a server is not a local lock: no retry loop here).
    const files = opts?.stillThere ? all.filter(opts.stillThere) : all;
    const res: DiscoverResult = { inserted: 0, reversioned: 0, unchanged: 0, tombstoned: 0 };
    if (files.length === 0) return res;
    const nowIso = iso(now);
    const policy = opts?.onChange ?? this.onChange;
    return this.tx('discover', (c) => discoverBatch(c, this.s, files, nowIso, policy), this.s.purgeLock('shared', this.schema));
  }

  // --- claim ------------------------------------------------------------------------------

  async claim(n: number, opts: ClaimOptions): Promise<Claim[]> {
    if (n <= 0) return [];
    const nowIso = iso(opts.now);
    const f = opts.fileTypes;
    const values = [nowIso, Math.floor(n), opts.workerId, iso(opts.now + opts.leaseMs), f === undefined ? null : [...f.types], f?.except !== true];
    const toClaims = (rows: Row[]) =>
      rows
        .sort((a, b) => cmp(String(a.ready_at), String(b.ready_at)) || cmp(String(a.file_url), String(b.file_url)))
        .map((r) => toClaim(r, opts.now + opts.leaseMs));
    // The common case: one statement (its own transaction), one round trip.
    const first = (await this.one('claim', this.s.claim, values)).rows;
    if (!first.some((r) => r.expired === true)) return toClaims(first);
    // Some lease ran out (and nothing was claimed): sweep, then claim, in one transaction.
    return this.tx('claim', async (c) => {
      await this.sweepExpiredLeases(c, opts.now, nowIso, opts);
      return toClaims((await c.query<Row>({ ...this.s.claimAfterSweep, values })).rows);
    });
  }

  async claimFile(fileUrl: string, opts: ClaimOptions): Promise<Claim | null> {
    const nowIso = iso(opts.now);
    const values = (afterSweep: boolean) => [nowIso, fileUrl, opts.workerId, iso(opts.now + opts.leaseMs), afterSweep];
    const pick = (rows: Row[]) => {
      const r = rows.find((x) => x.expired !== true);
      return r ? toClaim(r, opts.now + opts.leaseMs) : null;
    };
    const first = (await this.one('claim', this.s.claimOne, values(false))).rows;
    if (!first.some((r) => r.expired === true)) return pick(first);
    return this.tx('claim', async (c) => {
      await this.sweepExpiredLeases(c, opts.now, nowIso, opts);
      return pick((await c.query<Row>({ ...this.s.claimOne, values: values(true) })).rows);
    });
  }

  /**
   * Inside a claim transaction: expired leases become failed (or dead) before anything is
   * claimed. The rows stay locked (FOR UPDATE) from the moment they are read until the commit,
   * so `onExpired` runs while nobody can claim them.
   */
  private async sweepExpiredLeases(c: pg.PoolClient, now: number, nowIso: string, opts: ClaimOptions): Promise<void> {
    const rows = (await c.query<Row>({ ...this.s.expiredLeases, values: [nowIso, SWEEP_BATCH] })).rows;
    if (rows.length === 0) return;
    const policies = rows.map((r) => opts.routeOf?.(String(r.file_type))?.retry ?? this.retry);
    const expired = rows.map((r, i) => toExpired(r, expiryStatus(policies[i]!, Number(r.retry_count))));
    // Only handlers on THIS host can be checked; another host's are protected by the token.
    opts.onExpired?.(expired);
    const plans = rows.map((r, i) => planFailure(policies[i]!, Number(r.retry_count), false, now, this.random));
    const errors = expired.map((e) => leaseExpiredError(e.workerId));
    await c.query({
      ...this.s.expire,
      values: [
        nowIso,
        expired.map((e) => e.fileUrl),
        expired.map((e) => e.token),
        plans.map((p) => p.status),
        plans.map((p) => p.retryCount),
        plans.map((p) => (p.dueAt === null ? null : iso(p.dueAt))),
        errors,
        expired.map((e) => e.version),
        expired.map((e) => e.attempt),
        expired.map((e) => e.workerId ?? '?'),
        rows.map((r) => r.started_at ?? null),
        rows.map((r) => durationOf(r.started_at, now)),
      ],
    });
  }

  // --- token-guarded writes ---------------------------------------------------------------

  async heartbeat(refs: readonly ClaimRef[], leaseMs: number, now: number): Promise<ClaimRef[]> {
    if (refs.length === 0) return [];
    const r = await this.one('heartbeat', this.s.extend, [iso(now + leaseMs), iso(now), refs.map((x) => x.fileUrl), refs.map((x) => x.token)]);
    const held = new Set(r.rows.map((row) => `${String(row.claim_token)}\0${String(row.file_url)}`));
    return refs.filter((x) => !held.has(`${x.token}\0${x.fileUrl}`));
  }

  async setHandlerPid(ref: ClaimRef, pid: number): Promise<WriteResult> {
    const r = await this.one('setHandlerPid', this.s.setPid, [pid, ref.fileUrl, ref.token]);
    return r.rowCount === 1 ? 'ok' : 'lost';
  }

  async complete(items: readonly Completion[]): Promise<WriteResult[]> {
    if (items.length === 0) return [];
    const r = await this.one('complete', this.s.complete, [
      items.map((c) => c.fileUrl),
      items.map((c) => c.token),
      items.map((c) => c.stats.totalRows),
      items.map((c) => c.stats.filteredRows),
      items.map((c) => c.stats.persistedRows),
      items.map((c) => Math.round(c.stats.durationMs)),
      items.map((c) => iso(c.now)),
      items.map((c) => c.afterAction ?? null),
      items.map((c) => c.fingerprint ?? null),
    ]);
    const ok = new Set(r.rows.map((row) => Number(row.ord)));
    return items.map((_, i) => (ok.has(i + 1) ? 'ok' : 'lost'));
  }

  async fail(f: Failure): Promise<FailResult> {
    // No transaction needed: while the token holds the file (status processing), nothing else
    // changes retry_count, so the value read here is the one the guarded update replaces.
    const held = (await this.one('fail', this.s.heldRow, [f.fileUrl, f.token])).rows[0];
    if (!held) return 'lost';
    const plan = planFailure(f.retry ?? this.retry, Number(held.retry_count), f.permanent, f.now, this.random);
    const status = plan.status;
    const nowIso = iso(f.now);
    const r = await this.one('fail', this.s.fail, [
      f.fileUrl,
      f.token,
      status,
      plan.retryCount,
      plan.dueAt === null ? null : iso(plan.dueAt),
      f.error,
      Math.round(f.durationMs),
      failureCompletedAt(status, nowIso),
      nowIso,
      failureOutcome(f.reason, f.permanent, status),
      f.fingerprint ?? null,
      // As in SQLite: the after-action planned for a dead file is recorded with the outcome.
      failureAfterAction(status, f.deadAfterAction),
    ]);
    return r.rowCount === 1 ? status : 'lost';
  }

  async release(refs: readonly ClaimRef[], now: number): Promise<WriteResult[]> {
    if (refs.length === 0) return [];
    const r = await this.one('release', this.s.release, [iso(now), refs.map((x) => x.fileUrl), refs.map((x) => x.token)]);
    const ok = new Set(r.rows.map((row) => Number(row.ord)));
    return refs.map((_, i) => (ok.has(i + 1) ? 'ok' : 'lost'));
  }

  // --- operator actions -------------------------------------------------------------------

  async requeue(q: RequeueQuery): Promise<number> {
    const back = [...(q.movedBack ?? new Map<string, string>())];
    const r = await this.one('requeue', this.s.requeue, [
      iso(q.now), [...(q.files ?? [])], q.dead === true, q.fileType ?? null, q.by ?? 'ckpt retry',
      back.map(([f]) => f), back.map(([, from]) => movedBackLabel(from)),
    ]);
    return r.rowCount ?? 0;
  }

  async tombstone(fileUrl: string): Promise<Tombstone | null> {
    const r = (await this.one('tombstone', this.s.tombstone, [fileUrl])).rows[0];
    return r ? toTombstone(r) : null;
  }

  async revive(f: DiscoveredFile, q: { now: number; by?: string }): Promise<Tombstone | null> {
    const nowIso = iso(q.now);
    return this.tx('revive', async (c) => {
      const t = (await c.query<Row>({ ...this.s.liftTombstone, values: [f.fileUrl] })).rows[0];
      if (!t) return null;
      const tomb = toTombstone(t);
      const version = tomb.version + 1;
      // Discovery deletes a tombstone in the transaction that inserts the row: no row can be there.
      const ins = await c.query({ ...this.s.insertOne, values: [nowIso, f.fileUrl, f.fileType, iso(f.mtimeMs), f.fingerprint, f.size, version] });
      if (ins.rowCount !== 1) return null;
      await c.query({ ...this.s.requeueEvent, values: [f.fileUrl, version, q.by ?? 'ckpt retry', nowIso, tombstoneLiftedLabel(tomb)] });
      return tomb;
    });
  }

  async recordAfterAction(d: AfterActionDone): Promise<void> {
    await this.one('recordAfterAction', this.s.recordAfterAction, [d.done, d.fileUrl, d.token]);
  }

  async purge(q: PurgeQuery): Promise<number> {
    const statuses = q.statuses.filter((s) => s === 'completed' || s === 'dead');
    if (statuses.length === 0) return 0;
    return this.tx(
      'purge',
      async (c) => {
        const r = await c.query<{ n: number }>({ ...this.s.purge, values: [statuses, iso(q.now - q.olderThanMs), iso(q.now), q.limit ?? null] });
        return r.rows[0]?.n ?? 0;
      },
      this.s.purgeLock('exclusive', this.schema),
    );
  }

  async expireTombstones(q: TombstoneExpiryQuery): Promise<number> {
    // Under the purge lock too: discovery reads a tombstone and inserts a row in one go.
    return this.tx(
      'expireTombstones',
      async (c) => (await c.query({ ...this.s.expireTombstones, values: [iso(q.now - q.olderThanMs), q.limit ?? null] })).rowCount ?? 0,
      this.s.purgeLock('exclusive', this.schema),
    );
  }

  // --- reads ------------------------------------------------------------------------------

  async get(fileUrl: string): Promise<FileRecord | null> {
    const r = (await this.one('get', this.s.get, [fileUrl])).rows[0];
    return r ? toRecord(r) : null;
  }

  async list(q: ListQuery): Promise<FileRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown, cast: string) => (args.push(v), `$${args.length}::${cast}`);
    if (q.status) where.push(`status = ${arg(q.status, 'text')}`);
    if (q.fileType) where.push(`file_type = ${arg(q.fileType, 'text')}`);
    if (q.since !== undefined) where.push(`updated_at >= ${arg(iso(q.since), 'timestamptz')}`);
    if (q.after !== undefined) where.push(`file_url > ${arg(q.after, 'text')}`);
    const text = `SELECT * FROM ${this.qs}.file_checkpoints ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY file_url LIMIT ${arg(q.limit ?? 100, 'int')}`;
    // Named by its shape, so each of the 16 filter combinations is prepared once per connection.
    const name = `ckpt_list_${q.status ? 's' : ''}${q.fileType ? 't' : ''}${q.since !== undefined ? 'u' : ''}${q.after !== undefined ? 'a' : ''}`;
    return (await this.one('list', { name, text }, args)).rows.map(toRecord);
  }

  async attempts(fileUrl: string): Promise<AttemptRecord[]> {
    return (await this.one('attempts', this.s.attempts, [fileUrl])).rows.map(toAttempt);
  }

  async counts(): Promise<Record<Status, number>> {
    return countsOf((await this.one('counts', this.s.counts, [])).rows);
  }

  async stats(now: number): Promise<StoreStats> {
    const counts = await this.counts();
    const oldest = (await this.one('stats', this.s.oldestPending, [])).rows[0];
    const w = (await this.one('stats', this.s.outcomesSince, [iso(now - 60_000), iso(now - 3_600_000)])).rows[0] ?? {};
    return statsOf(counts, oldest, w);
  }

  /**
   * One snapshot: every read in one REPEATABLE READ READ ONLY transaction, so the counts, the
   * rates, the backlog and the lists agree with each other however the daemons write meanwhile
   * (READ COMMITTED would give each statement its own snapshot).
   */
  async activity(q: ActivityQuery): Promise<Activity> {
    const sinces = q.windowsMs.map((w) => iso(q.now - w));
    return this.tx(
      'activity',
      async (c) => {
        const read = async (st: { name: string; text: string }, values: unknown[]) => (await c.query<Row>({ ...st, values })).rows;
        const counts = countsOf(await read(this.s.counts, []));
        const oldest = (await read(this.s.oldestPending, []))[0];
        const w = (await read(this.s.outcomesSince, [iso(q.now - 60_000), iso(q.now - 3_600_000)]))[0] ?? {};
        const found = new Map<number, number>();
        for (const r of await read(this.s.discoveredSince, [sinces])) found.set(Number(r.i), Number(r.n));
        const windows = [];
        for (const [i, windowMs] of q.windowsMs.entries()) {
          const o = (await read(this.s.outcomesIn, [sinces[i]]))[0] ?? {};
          windows.push({ windowMs, discovered: found.get(i + 1) ?? 0, completed: Number(o.c ?? 0), failed: Number(o.f ?? 0) });
        }
        return {
          stats: statsOf(counts, oldest, w),
          workers: (await read(this.s.workers, [])).map(toWorker),
          windows,
          backlog: (await read(this.s.backlog, [q.limit])).map(toBacklogGroup).sort(byBacklog),
          inFlight: (await read(this.s.inFlight, [q.limit])).map(toInFlight),
          failures: (await read(this.s.recentFailures, [q.limit])).map(toRecentFailure),
        };
      },
      'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY',
    );
  }

  // --- workers ----------------------------------------------------------------------------

  async touchWorker(w: WorkerInfo, now: number): Promise<void> {
    await this.one('touchWorker', this.s.touchWorker, [w.workerId, w.host, w.pid, iso(now), w.mode, w.modeSince === null ? null : iso(w.modeSince), w.modeReason]);
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.one('removeWorker', this.s.removeWorker, [workerId]);
  }

  async workers(): Promise<WorkerRecord[]> {
    return (await this.one('workers', this.s.workers, [])).rows.map(toWorker);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.pool.end();
    } catch {
      // ending a pool whose server is gone: nothing more to do
    }
  }
}

/** A short random pause before running a transaction again that lost a deadlock. */
function conflictPause(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5 * attempt)));
}

function countsOf(rows: Row[]): Record<Status, number> {
  const out: Record<Status, number> = { pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 };
  for (const r of rows) out[r.status as Status] = Number(r.n);
  return out;
}

/** stats() from its three reads: counts, the oldest pending row, the outcomes of the last hour. */
function statsOf(counts: Record<Status, number>, oldest: Row | undefined, w: Row): StoreStats {
  return {
    counts,
    oldestPendingAt: (oldest?.due_at as string | null | undefined) ?? null,
    completedLastMinute: Number(w.cm ?? 0),
    completedLastHour: Number(w.ch ?? 0),
    failedLastMinute: Number(w.fm ?? 0),
    failedLastHour: Number(w.fh ?? 0),
  };
}
