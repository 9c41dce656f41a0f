import { randomUUID } from 'node:crypto';
import { syncCommitted } from './durable-commit.js';
import { type SqliteDatabase, openDatabase, type OpenOptions } from './open-database.js';
import { DEFAULT_RETRY } from './retry-policy.js';
import { takesFileAway, redoneLabel } from './rules/after-action-label.js';
import { SWEEP_BATCH, discoverStep, expiryStatus, failureAfterAction, failureCompletedAt, failureOutcome, leaseExpiredError, planFailure } from './rules/transitions.js';
import { classifySqliteError, toStoreError } from './sqlite-errors.js';
import { type Row, durationOf, movedBackLabel, toExpired, toAttempt, toClaim, toRecord, toTombstone, toWorker, tombstoneLiftedLabel } from './record.js';
import { iso } from './time.js';
import { nothingClaimable } from './claimable.js';
import { prepareActivity } from './sqlite-activity.js';
import { prepare } from './sqlite-statements.js';
import {
  type Activity,
  type ActivityQuery,
  type AfterActionDone,
  type AttemptRecord,
  type ChangePolicy,
  type CheckpointStore,
  type Claim,
  type ClaimOptions,
  type ClaimRef,
  type Completion,
  type DiscoverResult,
  type DiscoverOptions,
  type DiscoveredFile,
  type FailResult,
  type Failure,
  type FileRecord,
  type ListQuery,
  type PurgeQuery,
  type TombstoneExpiryQuery,
  type RequeueQuery,
  type RetryPolicy,
  type Status,
  type StoreStats,
  type UnfinishedAfterAction,
  type WorkerInfo,
  type WorkerRecord,
  type WriteResult,
  REQUEUED,
  type Tombstone,
} from './types.js';

/** Re-exported for the fallback layer, which maps the rows it reads from a locked file. */
export { toRecord } from './record.js';

export interface SqliteStoreOptions extends OpenOptions {
  retry?: RetryPolicy;
  onChange?: ChangePolicy;
  /**
   * How long a write keeps retrying SQLITE_BUSY (asynchronously, with backoff, so the event
   * loop stays free) before it gives up with StoreUnavailableError('locked').
   */
  lockTimeoutMs?: number;
  random?: () => number;
}

/**
 * The SQLite checkpoint store. Every write runs as an IMMEDIATE transaction (a deferred one that
 * reads then writes fails at once with SQLITE_BUSY_SNAPSHOT whatever the timeout, measured), and
 * every write after a claim names the claim token: a worker whose claim was taken over changes
 * nothing and is told `lost`.
 *
 * The transitions and what each records are rules/transitions.ts; this class executes them,
 * each as a conditional write guarded as the table there says.
 */
export class SqliteStore implements CheckpointStore {
  readonly kind = 'sqlite' as const;
  readonly db: SqliteDatabase;
  private readonly retry: RetryPolicy;
  private readonly onChange: ChangePolicy;
  private readonly lockTimeoutMs: number;
  private readonly random: () => number;
  private readonly s: ReturnType<typeof prepare>;
  private closed = false;
  private readActivity: ((q: ActivityQuery) => Activity) | null = null;

  constructor(readonly file: string, opts: SqliteStoreOptions = {}) {
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.onChange = opts.onChange ?? 'reprocess';
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 5_000;
    this.random = opts.random ?? Math.random;
    this.db = openDatabase(file, opts);
    try {
      this.s = prepare(this.db);
    } catch (err) {
      this.db.close();
      throw toStoreError(err, `database ${file}`);
    }
  }

  /**
   * Run `fn` as an IMMEDIATE transaction. SQLITE_BUSY is retried with jittered backoff until
   * `lockTimeoutMs` has passed; the waits are async so heartbeats and handlers keep running.
   * Errors come out classified (StoreUnavailableError for locked/broken).
   *
   * `durable(result)`: true when the commit must be on disk before the caller hears of it (it
   * allows an after-action that takes a file out of its folder): the -wal is then synced once,
   * for the whole transaction, before this resolves (durable-commit.ts).
   */
  private async write<T>(what: string, fn: () => T, durable?: (result: T) => boolean): Promise<T> {
    const tx = this.db.transaction(fn);
    const started = Date.now();
    let delay = 2;
    for (;;) {
      let result: T;
      try {
        result = tx.immediate();
      } catch (err) {
        if (classifySqliteError(err) !== 'transient' || Date.now() - started >= this.lockTimeoutMs) {
          throw toStoreError(err, what);
        }
        await new Promise((r) => setTimeout(r, delay + Math.floor(this.random() * delay)));
        delay = Math.min(delay * 2, 200);
        continue;
      }
      if (durable?.(result)) this.syncCommitted(what);
      return result;
    }
  }

  /** The commit is made; a power cut must not take it back (see write()). */
  private syncCommitted(what: string): void {
    try {
      syncCommitted(this.db);
    } catch (err) {
      // EIO from fdatasync: the disk failed under the -wal. The caller leaves the file where it
      // is (a completed row whose file is still there is finished by a later process).
      throw new Error(`${what}: committed, but the -wal could not be synced: ${(err as Error).message}`, { cause: err });
    }
  }

  private read<T>(what: string, fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(toStoreError(err, what));
    }
  }

  discover(files: readonly DiscoveredFile[], now: number, opts?: DiscoverOptions): Promise<DiscoverResult> {
    if (files.length === 0) return Promise.resolve({ inserted: 0, reversioned: 0, unchanged: 0, tombstoned: 0 });
    const nowIso = iso(now);
    // write() runs this again after SQLITE_BUSY: the check and the counts start over each try.
    return this.write('discover', () => {
      const res: DiscoverResult = { inserted: 0, reversioned: 0, unchanged: 0, tombstoned: 0 };
      const policy = opts?.onChange ?? this.onChange;
      for (const f of files) if (!opts?.stillThere || opts.stillThere(f)) this.discoverOne(f, nowIso, policy, res);
      return res;
    });
  }

  private discoverOne(f: DiscoveredFile, nowIso: string, policy: ChangePolicy, res: DiscoverResult): void {
    const s = this.s;
    const ts = iso(f.mtimeMs);
    const tomb = s.getTombstone.get(f.fileUrl) as { fingerprint: string; version: number } | undefined;
    const first = discoverStep(tomb ? { tombstone: tomb } : null, f.fingerprint, policy);
    if (first.step === 'tombstoned') {
      res.tombstoned++;
      return;
    }
    const version = first.step === 'insert' ? first.version : 1;
    if (s.insert.run(f.fileUrl, f.fileType, ts, f.fingerprint, f.size, nowIso, version, nowIso, nowIso).changes === 1) {
      if (tomb) s.deleteTombstone.run(f.fileUrl);
      res.inserted++;
      return;
    }
    const cur = s.getForDiscover.get(f.fileUrl) as { status: Status; fingerprint: string; after_action: string | null; processed_by: string | null; updated_at: string } | undefined;
    const step = cur ? discoverStep({ row: cur }, f.fingerprint, policy).step : 'unchanged';
    if (step === 'reversion' && s.reversion.run(f.fileType, ts, f.fingerprint, f.size, nowIso, nowIso, f.fileUrl).changes === 1) {
      res.reversioned++;
      return;
    }
    if (step === 'refresh') s.refreshFingerprint.run(ts, f.fingerprint, f.size, nowIso, f.fileUrl);
    res.unchanged++;
    if (cur && cur.fingerprint === f.fingerprint && (cur.status === 'completed' || cur.status === 'dead') && isUnfinishedLabel(cur.after_action)) {
      (res.unfinished ??= []).push({
        fileUrl: f.fileUrl,
        status: cur.status,
        afterAction: cur.after_action!,
        fingerprint: cur.fingerprint,
        processedBy: cur.processed_by,
        recordedAt: Date.parse(cur.updated_at),
      });
    }
  }

  claim(n: number, opts: ClaimOptions): Promise<Claim[]> {
    const nowIso = iso(opts.now);
    if (nothingClaimable(this.db, nowIso)) return Promise.resolve([]);
    const leaseIso = iso(opts.now + opts.leaseMs);
    // One random prefix per batch; the row id makes each token unique (cheaper than a UUID per row).
    const prefix = `${randomUUID()}.`;
    let madeDead = false;
    return this.write(
      'claim',
      () => {
        madeDead = this.sweepExpiredLeases(opts.now, nowIso, opts);
        const f = opts.fileTypes;
        const rows = (
          f === undefined
            ? this.s.claim.all(prefix, opts.workerId, nowIso, leaseIso, nowIso, nowIso, n)
            : this.s.claimTypes.all(prefix, opts.workerId, nowIso, leaseIso, nowIso, nowIso, JSON.stringify(f.types), f.except === true ? 0 : 1, n)
        ) as Row[];
        return rows.map((r) => toClaim(r, opts.now + opts.leaseMs));
      },
      () => madeDead,
    );
  }

  claimFile(fileUrl: string, opts: ClaimOptions): Promise<Claim | null> {
    const nowIso = iso(opts.now);
    const leaseIso = iso(opts.now + opts.leaseMs);
    let madeDead = false;
    return this.write(
      'claim',
      () => {
        madeDead = this.sweepExpiredLeases(opts.now, nowIso, opts);
        const r = this.s.claimOne.get(`${randomUUID()}.`, opts.workerId, nowIso, leaseIso, nowIso, fileUrl, nowIso) as Row | undefined;
        return r ? toClaim(r, opts.now + opts.leaseMs) : null;
      },
      () => madeDead,
    );
  }

  /**
   * Inside a claim transaction: expired leases become failed (or dead) before anything is
   * claimed, each under its route's policy (ClaimOptions.routeOf). True when one became dead
   * with an after-action that takes the file away (it follows the commit, which must be durable).
   */
  private sweepExpiredLeases(now: number, nowIso: string, opts: ClaimOptions): boolean {
    const rows = this.s.expiredLeases.all(nowIso, SWEEP_BATCH) as Row[];
    if (rows.length === 0) return false;
    const routes = rows.map((r) => opts.routeOf?.(String(r.file_type)));
    const expired = rows.map((r, i) => toExpired(r, expiryStatus(routes[i]?.retry ?? this.retry, Number(r.retry_count))));
    // Orphaned handlers of a dead worker on this host must be gone before the file is claimable.
    opts.onExpired?.(expired);
    let durable = false;
    for (let i = 0; i < expired.length; i++) {
      const e = expired[i]!;
      const r = rows[i]!;
      const plan = planFailure(routes[i]?.retry ?? this.retry, Number(r.retry_count), false, now, this.random);
      const due = plan.dueAt === null ? null : iso(plan.dueAt);
      const error = leaseExpiredError(e.workerId);
      const dead = routes[i]?.deadAfterAction ?? opts.deadAfterAction;
      const after = failureAfterAction(plan.status, dead);
      if (plan.status === 'dead' && takesFileAway(dead ?? null)) durable = true;
      this.s.expire.run(plan.status, plan.retryCount, due, error, failureCompletedAt(plan.status, nowIso), after, nowIso, e.fileUrl, e.token);
      this.s.insertAttempt.run(e.fileUrl, e.version, e.attempt, e.workerId ?? '?', e.token, r.started_at, nowIso, 'lease_expired', error, durationOf(r.started_at, now), after);
    }
    return durable;
  }

  heartbeat(refs: readonly ClaimRef[], leaseMs: number, now: number): Promise<ClaimRef[]> {
    if (refs.length === 0) return Promise.resolve([]);
    const leaseIso = iso(now + leaseMs);
    const nowIso = iso(now);
    return this.write('heartbeat', () => refs.filter((r) => this.s.extend.run(leaseIso, nowIso, r.fileUrl, r.token).changes === 0));
  }

  setHandlerPid(ref: ClaimRef, pid: number): Promise<WriteResult> {
    return this.write('setHandlerPid', () => (this.s.setPid.run(pid, ref.fileUrl, ref.token).changes === 1 ? 'ok' : 'lost'));
  }

  complete(items: readonly Completion[]): Promise<WriteResult[]> {
    if (items.length === 0) return Promise.resolve([]);
    // One sync for the whole batch, and none when every file stays where it is (keep).
    const durable = (results: WriteResult[]) => items.some((c, i) => results[i] === 'ok' && takesFileAway(c.afterAction ?? null));
    return this.write('complete', () =>
      items.map((c) => {
        const nowIso = iso(c.now);
        const st = c.stats;
        const r = this.s.complete.get(
          st.totalRows, st.filteredRows, st.persistedRows, Math.round(st.durationMs), nowIso, c.afterAction ?? null, c.fingerprint ?? null, nowIso, c.fileUrl, c.token,
        ) as Row | undefined;
        if (!r) return 'lost';
        this.s.insertAttempt.run(c.fileUrl, r.version, r.attempts, r.processed_by, c.token, r.started_at, nowIso, 'completed', null, Math.round(st.durationMs), c.afterAction ?? null);
        return 'ok' as const;
      }),
      durable,
    );
  }

  fail(f: Failure): Promise<FailResult> {
    const nowIso = iso(f.now);
    return this.write('fail', () => {
      const cur = this.s.heldRow.get(f.fileUrl, f.token) as Row | undefined;
      if (!cur) return 'lost';
      const plan = planFailure(f.retry ?? this.retry, Number(cur.retry_count), f.permanent, f.now, this.random);
      const due = plan.dueAt === null ? null : iso(plan.dueAt);
      const after = failureAfterAction(plan.status, f.deadAfterAction);
      const ms = Math.round(f.durationMs);
      this.s.fail.run(plan.status, plan.retryCount, due, f.error, ms, failureCompletedAt(plan.status, nowIso), after, f.fingerprint ?? null, nowIso, f.fileUrl, f.token);
      const outcome = failureOutcome(f.reason, f.permanent, plan.status);
      this.s.insertAttempt.run(f.fileUrl, cur.version, cur.attempts, cur.processed_by, f.token, cur.started_at, nowIso, outcome, f.error, ms, after);
      return plan.status;
    }, (res) => res === 'dead' && takesFileAway(f.deadAfterAction ?? null));
  }

  release(refs: readonly ClaimRef[], now: number): Promise<WriteResult[]> {
    if (refs.length === 0) return Promise.resolve([]);
    const nowIso = iso(now);
    return this.write('release', () =>
      refs.map((ref) => {
        const r = this.s.release.get(nowIso, nowIso, ref.fileUrl, ref.token) as Row | undefined;
        if (!r) return 'lost';
        this.s.insertAttempt.run(ref.fileUrl, r.version, r.attempts, r.processed_by, ref.token, r.started_at, nowIso, 'released', null, durationOf(r.started_at, now), null);
        return 'ok';
      }),
    );
  }

  requeue(q: RequeueQuery): Promise<number> {
    const nowIso = iso(q.now);
    const by = q.by ?? 'ckpt retry';
    return this.write('requeue', () => {
      const back: Row[] = [];
      if (q.files) for (const f of q.files) back.push(...(this.s.requeueOne.all(nowIso, nowIso, f) as Row[]));
      if (q.dead) {
        back.push(...((q.fileType === undefined ? this.s.requeueDead.all(nowIso, nowIso) : this.s.requeueDeadType.all(nowIso, nowIso, q.fileType)) as Row[]));
      }
      for (const r of back) {
        const url = String(r.file_url);
        const from = q.movedBack?.get(url);
        this.s.insertEvent.run(url, r.version, r.attempts, by, nowIso, REQUEUED, from === undefined ? null : movedBackLabel(from));
      }
      return back.length;
    });
  }

  tombstone(fileUrl: string): Promise<Tombstone | null> {
    return this.read('tombstone', () => {
      const t = this.s.getTombstoneRow.get(fileUrl) as Row | undefined;
      return t ? toTombstone(t) : null;
    });
  }

  revive(f: DiscoveredFile, q: { now: number; by?: string }): Promise<Tombstone | null> {
    const nowIso = iso(q.now);
    return this.write('revive', () => {
      const t = this.s.getTombstoneRow.get(f.fileUrl) as Row | undefined;
      if (!t) return null;
      const tomb = toTombstone(t);
      this.s.deleteTombstone.run(f.fileUrl);
      const version = tomb.version + 1;
      if (this.s.insert.run(f.fileUrl, f.fileType, iso(f.mtimeMs), f.fingerprint, f.size, nowIso, version, nowIso, nowIso).changes === 0) return null;
      this.s.insertEvent.run(f.fileUrl, version, 0, q.by ?? 'ckpt retry', nowIso, REQUEUED, tombstoneLiftedLabel(tomb));
      return tomb;
    });
  }

  recordAfterAction(d: AfterActionDone): Promise<void> {
    return this.write('recordAfterAction', () => {
      this.s.recordAfterAction.run(d.done, d.fileUrl, d.token);
    });
  }

  get(fileUrl: string): Promise<FileRecord | null> {
    return this.read('get', () => {
      const r = this.s.get.get(fileUrl) as Row | undefined;
      return r ? toRecord(r) : null;
    });
  }

  list(q: ListQuery): Promise<FileRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.status) (where.push('status = ?'), args.push(q.status));
    if (q.fileType) (where.push('file_type = ?'), args.push(q.fileType));
    if (q.since !== undefined) (where.push('updated_at >= ?'), args.push(iso(q.since)));
    if (q.after !== undefined) (where.push('file_url > ?'), args.push(q.after));
    const sql = `SELECT * FROM file_checkpoints ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY file_url LIMIT ?`;
    args.push(q.limit ?? 100);
    return this.read('list', () => (this.db.prepare(sql).all(...args) as Row[]).map(toRecord));
  }

  attempts(fileUrl: string): Promise<AttemptRecord[]> {
    return this.read('attempts', () => (this.s.attempts.all(fileUrl) as Row[]).map(toAttempt));
  }

  counts(): Promise<Record<Status, number>> {
    return this.read('counts', () => {
      const out: Record<Status, number> = { pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 };
      for (const r of this.s.counts.all() as { status: Status; n: number }[]) out[r.status] = r.n;
      return out;
    });
  }

  stats(now: number): Promise<StoreStats> {
    return this.counts().then((counts) => this.read('stats', () => this.statsWith(counts, now)));
  }

  /** stats() around counts already read (activity() reads them in its own scan). */
  private statsWith(counts: Record<Status, number>, now: number): StoreStats {
    const oldest = this.s.oldestPending.get() as { due_at: string | null } | undefined;
    const minute = iso(now - 60_000);
    const hour = iso(now - 3_600_000);
    const w = this.s.outcomesSince.get(minute, minute, hour) as { cm: number | null; fm: number | null; ch: number | null; fh: number | null };
    return {
      counts,
      oldestPendingAt: oldest?.due_at ?? null,
      completedLastMinute: w.cm ?? 0,
      completedLastHour: w.ch ?? 0,
      failedLastMinute: w.fm ?? 0,
      failedLastHour: w.fh ?? 0,
    };
  }

  activity(q: ActivityQuery): Promise<Activity> {
    return this.read('activity', () =>
      (this.readActivity ??= prepareActivity(this.db, {
        stats: (counts, now) => this.statsWith(counts, now),
        workers: () => (this.s.workers.all() as Row[]).map(toWorker),
      }))(q),
    );
  }

  purge(q: PurgeQuery): Promise<number> {
    const statuses = q.statuses.filter((s) => s === 'completed' || s === 'dead');
    if (statuses.length === 0) return Promise.resolve(0);
    const cut = iso(q.now - q.olderThanMs);
    const nowIso = iso(q.now);
    const marks = statuses.map(() => '?').join(',');
    return this.write('purge', () => {
      // The rows of this call, picked once (LIMIT -1: all), so the three statements agree on
      // them; oldest first through fc_finished (migration 4), whose condition is repeated
      // literally so that SQLite may use it: a batch reads the rows it deletes, not the table.
      this.db.exec('CREATE TEMP TABLE IF NOT EXISTS purge_batch (file_url TEXT PRIMARY KEY); DELETE FROM temp.purge_batch');
      this.db
        .prepare(
          `INSERT INTO temp.purge_batch SELECT file_url FROM file_checkpoints INDEXED BY fc_finished
           WHERE status IN ('completed', 'dead') AND status IN (${marks}) AND updated_at < ? ORDER BY updated_at LIMIT ?`,
        )
        .run(...statuses, cut, q.limit ?? -1);
      this.db.prepare(
        `INSERT OR REPLACE INTO file_tombstones (file_url, fingerprint, version, status, purged_at)
         SELECT file_url, fingerprint, version, status, ? FROM file_checkpoints WHERE file_url IN temp.purge_batch`,
      ).run(nowIso);
      this.db.exec('DELETE FROM file_attempts WHERE file_url IN temp.purge_batch');
      const n = this.db.prepare('DELETE FROM file_checkpoints WHERE file_url IN temp.purge_batch').run().changes;
      this.db.exec('DELETE FROM temp.purge_batch');
      return n;
    });
  }

  expireTombstones(q: TombstoneExpiryQuery): Promise<number> {
    const cut = iso(q.now - q.olderThanMs);
    return this.write('expireTombstones', () =>
      this.db
        .prepare('DELETE FROM file_tombstones WHERE file_url IN (SELECT file_url FROM file_tombstones INDEXED BY ft_purged WHERE purged_at < ? ORDER BY purged_at LIMIT ?)')
        .run(cut, q.limit ?? -1).changes,
    );
  }

  takeAfterAction(item: UnfinishedAfterAction, workerId: string, now: number): Promise<boolean> {
    const nowIso = iso(now);
    return this.write('takeAfterAction', () =>
      this.s.takeAfterAction.run(redoneLabel(item.afterAction, workerId, nowIso), nowIso, item.fileUrl, item.status, item.fingerprint, item.afterAction).changes === 1,
    );
  }

  touchWorker(w: WorkerInfo, now: number): Promise<void> {
    const nowIso = iso(now);
    return this.write('touchWorker', () => {
      this.s.touchWorker.run(w.workerId, w.host, w.pid, nowIso, nowIso, w.mode, w.modeSince === null ? null : iso(w.modeSince), w.modeReason);
    });
  }

  removeWorker(workerId: string): Promise<void> {
    return this.write('removeWorker', () => {
      this.s.removeWorker.run(workerId);
    });
  }

  workers(): Promise<WorkerRecord[]> {
    return this.read('workers', () =>
      (this.s.workers.all() as Row[]).map(toWorker),
    );
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      try {
        this.db.close();
      } catch {
        // closing a broken database: nothing more to do
      }
    }
    return Promise.resolve();
  }
}

/** An unfinished after-action: one that takes the file away (see takesFileAway). */
const isUnfinishedLabel = takesFileAway;
