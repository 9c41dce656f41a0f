import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
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

/** In an UPDATE of file_checkpoints: the highest attempt number in the history of the row's version, or 0. */
export const MAX_ATTEMPT_ROW = `coalesce((SELECT max(a.attempt) FROM file_attempts a
  WHERE a.file_url = file_checkpoints.file_url AND a.version = file_checkpoints.version), 0)`;

/**
 * The attempt number a claim takes: one past the row's counter, and past any attempt row of the
 * version. A journal replayed from degraded mode can put a renumbered attempt into the history of
 * a row another worker holds, whose counter must stay that worker's number until its claim ends
 * (60-second soak, seed 570326835: the next claim took the number again). One seek in fa_file
 * per claimed row.
 */
const NEXT_ATTEMPT = `1 + max(attempts, ${MAX_ATTEMPT_ROW})`;

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
        madeDead = this.sweepExpiredLeases(opts.now, nowIso, opts.onExpired, opts.deadAfterAction);
        const rows = this.s.claim.all(prefix, opts.workerId, nowIso, leaseIso, nowIso, nowIso, n) as Row[];
        return rows.map((r) => toClaim(r, opts.now + opts.leaseMs));
      },
      () => madeDead && takesFileAway(opts.deadAfterAction ?? null),
    );
  }

  claimFile(fileUrl: string, opts: ClaimOptions): Promise<Claim | null> {
    const nowIso = iso(opts.now);
    const leaseIso = iso(opts.now + opts.leaseMs);
    let madeDead = false;
    return this.write(
      'claim',
      () => {
        madeDead = this.sweepExpiredLeases(opts.now, nowIso, opts.onExpired, opts.deadAfterAction);
        const r = this.s.claimOne.get(`${randomUUID()}.`, opts.workerId, nowIso, leaseIso, nowIso, fileUrl, nowIso) as Row | undefined;
        return r ? toClaim(r, opts.now + opts.leaseMs) : null;
      },
      () => madeDead && takesFileAway(opts.deadAfterAction ?? null),
    );
  }

  /**
   * Inside a claim transaction: expired leases become failed (or dead) before anything is
   * claimed. True when one became dead (its onDead after-action follows the commit).
   */
  private sweepExpiredLeases(now: number, nowIso: string, onExpired: ClaimOptions['onExpired'], deadAfterAction: string | undefined): boolean {
    const rows = this.s.expiredLeases.all(nowIso, SWEEP_BATCH) as Row[];
    if (rows.length === 0) return false;
    const expired = rows.map((r) => toExpired(r, expiryStatus(this.retry, Number(r.retry_count))));
    // Orphaned handlers of a dead worker on this host must be gone before the file is claimable.
    onExpired?.(expired);
    for (let i = 0; i < expired.length; i++) {
      const e = expired[i]!;
      const r = rows[i]!;
      const plan = planFailure(this.retry, Number(r.retry_count), false, now, this.random);
      const due = plan.dueAt === null ? null : iso(plan.dueAt);
      const error = leaseExpiredError(e.workerId);
      const after = failureAfterAction(plan.status, deadAfterAction);
      this.s.expire.run(plan.status, plan.retryCount, due, error, failureCompletedAt(plan.status, nowIso), after, nowIso, e.fileUrl, e.token);
      this.s.insertAttempt.run(e.fileUrl, e.version, e.attempt, e.workerId ?? '?', e.token, r.started_at, nowIso, 'lease_expired', error, durationOf(r.started_at, now), after);
    }
    return expired.some((e) => e.status === 'dead');
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
      const plan = planFailure(this.retry, Number(cur.retry_count), f.permanent, f.now, this.random);
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
    return this.counts().then((counts) =>
      this.read('stats', () => {
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
      }),
    );
  }

  activity(q: ActivityQuery): Promise<Activity> {
    return this.read('activity', () => (this.readActivity ??= prepareActivity(this.db))(q));
  }

  purge(q: PurgeQuery): Promise<number> {
    const statuses = q.statuses.filter((s) => s === 'completed' || s === 'dead');
    if (statuses.length === 0) return Promise.resolve(0);
    const cut = iso(q.now - q.olderThanMs);
    const nowIso = iso(q.now);
    const marks = statuses.map(() => '?').join(',');
    const cond = `status IN (${marks}) AND updated_at < ?`;
    return this.write('purge', () => {
      this.db.prepare(
        `INSERT OR REPLACE INTO file_tombstones (file_url, fingerprint, version, status, purged_at)
         SELECT file_url, fingerprint, version, status, ? FROM file_checkpoints WHERE ${cond}`,
      ).run(nowIso, ...statuses, cut);
      this.db.prepare(`DELETE FROM file_attempts WHERE file_url IN (SELECT file_url FROM file_checkpoints WHERE ${cond})`).run(...statuses, cut);
      return this.db.prepare(`DELETE FROM file_checkpoints WHERE ${cond}`).run(...statuses, cut).changes;
    });
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

/**
 * Back to pending with a fresh budget (parameters: due, now, then `where`'s). The plan of the
 * last after-action goes too: the file is back at its path, nothing is planned.
 */
function requeueSql(where: string): string {
  return `UPDATE file_checkpoints SET status = 'pending', retry_count = 0, due_at = ?, error_message = NULL,
            completed_at = NULL, after_action = NULL, updated_at = ?
          WHERE ${where}
          RETURNING file_url, version, attempts`;
}

function prepare(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    getTombstone: p('SELECT fingerprint, version FROM file_tombstones WHERE file_url = ?'),
    deleteTombstone: p('DELETE FROM file_tombstones WHERE file_url = ?'),
    insert: p(
      `INSERT INTO file_checkpoints (file_url, file_type, file_timestamp, fingerprint, file_size, due_at, version, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_url) DO NOTHING`,
    ),
    getForDiscover: p('SELECT status, fingerprint, after_action, processed_by, updated_at FROM file_checkpoints WHERE file_url = ?'),
    takeAfterAction: p(
      `UPDATE file_checkpoints SET after_action = ?, updated_at = ?
       WHERE file_url = ? AND status = ? AND fingerprint = ? AND after_action = ?`,
    ),
    reversion: p(
      `UPDATE file_checkpoints SET status = 'pending', version = version + 1, attempts = 0, retry_count = 0,
         file_type = ?, file_timestamp = ?, fingerprint = ?, file_size = ?, due_at = ?,
         records_total = 0, records_filtered = 0, records_persisted = 0, processing_time_ms = 0,
         error_message = NULL, started_at = NULL, completed_at = NULL, claim_token = NULL,
         handler_pid = NULL, after_action = NULL, updated_at = ?
       WHERE file_url = ? AND status IN ('completed', 'dead')`,
    ),
    refreshFingerprint: p(
      `UPDATE file_checkpoints SET file_timestamp = ?, fingerprint = ?, file_size = ?, updated_at = ?
       WHERE file_url = ? AND status IN ('pending', 'failed')`,
    ),
    // The inner WHERE repeats fc_ready's condition literally, or SQLite scans the table
    // (measured: 56 ms per claim at 1M rows instead of 34 us). NEXT_ATTEMPT: see its comment.
    claim: p(
      `UPDATE file_checkpoints
         SET status = 'processing', claim_token = ? || rowid, processed_by = ?, started_at = ?,
             due_at = ?, attempts = ${NEXT_ATTEMPT}, handler_pid = NULL, updated_at = ?
       WHERE rowid IN (SELECT rowid FROM file_checkpoints
                       WHERE status IN ('pending', 'failed') AND due_at <= ?
                       ORDER BY due_at LIMIT ?)
       RETURNING file_url, file_type, version, attempts, retry_count, claim_token, fingerprint`,
    ),
    claimOne: p(
      `UPDATE file_checkpoints
         SET status = 'processing', claim_token = ? || rowid, processed_by = ?, started_at = ?,
             due_at = ?, attempts = ${NEXT_ATTEMPT}, handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND status IN ('pending', 'failed') AND due_at <= ?
       RETURNING file_url, file_type, version, attempts, retry_count, claim_token, fingerprint`,
    ),
    expiredLeases: p(
      `SELECT file_url, version, attempts, retry_count, claim_token, processed_by, handler_pid, started_at
         FROM file_checkpoints WHERE status = 'processing' AND due_at <= ? ORDER BY due_at LIMIT ?`,
    ),
    expire: p(
      `UPDATE file_checkpoints SET status = ?, retry_count = ?, due_at = ?, error_message = ?,
         completed_at = ?, after_action = ?, handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    extend: p(
      `UPDATE file_checkpoints SET due_at = ?, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    setPid: p(`UPDATE file_checkpoints SET handler_pid = ? WHERE file_url = ? AND claim_token = ? AND status = 'processing'`),
    complete: p(
      `UPDATE file_checkpoints
         SET status = 'completed', records_total = ?, records_filtered = ?, records_persisted = ?,
             processing_time_ms = ?, completed_at = ?, after_action = ?, fingerprint = coalesce(?, fingerprint),
             error_message = NULL, due_at = NULL, handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'
       RETURNING version, attempts, processed_by, started_at`,
    ),
    heldRow: p(
      `SELECT version, attempts, retry_count, processed_by, started_at FROM file_checkpoints
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    fail: p(
      `UPDATE file_checkpoints SET status = ?, retry_count = ?, due_at = ?, error_message = ?,
         processing_time_ms = ?, completed_at = ?, after_action = ?, fingerprint = coalesce(?, fingerprint),
         handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    release: p(
      `UPDATE file_checkpoints SET status = 'pending', due_at = ?, handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'
       RETURNING version, attempts, processed_by, started_at`,
    ),
    requeueOne: p(requeueSql(`file_url = ? AND status IN ('failed', 'dead')`)),
    requeueDead: p(requeueSql(`status = 'dead'`)),
    requeueDeadType: p(requeueSql(`status = 'dead' AND file_type = ?`)),
    // A requeue in the history: no claim token, no end (see REQUEUED).
    insertEvent: p(
      `INSERT INTO file_attempts (file_url, version, attempt, worker_id, claim_token, started_at, ended_at,
         outcome, error_message, duration_ms, after_action)
       VALUES (?, ?, ?, ?, NULL, ?, NULL, ?, NULL, NULL, ?)`,
    ),
    getTombstoneRow: p('SELECT * FROM file_tombstones WHERE file_url = ?'),
    recordAfterAction: p('UPDATE file_attempts SET after_action = ? WHERE file_url = ? AND claim_token = ?'),
    insertAttempt: p(
      `INSERT INTO file_attempts (file_url, version, attempt, worker_id, claim_token, started_at, ended_at,
         outcome, error_message, duration_ms, after_action)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    get: p('SELECT * FROM file_checkpoints WHERE file_url = ?'),
    attempts: p('SELECT * FROM file_attempts WHERE file_url = ? ORDER BY version, attempt, id'),
    counts: p('SELECT status, count(*) AS n FROM file_checkpoints GROUP BY status'),
    // Same literal condition as fc_ready, so the index answers it.
    oldestPending: p(
      `SELECT due_at FROM file_checkpoints WHERE status IN ('pending', 'failed') AND status = 'pending'
       ORDER BY due_at LIMIT 1`,
    ),
    outcomesSince: p(
      `SELECT sum(outcome = 'completed' AND ended_at >= ?) AS cm,
              sum(outcome NOT IN ('completed', 'released') AND ended_at >= ?) AS fm,
              sum(outcome = 'completed') AS ch,
              sum(outcome NOT IN ('completed', 'released')) AS fh
         FROM file_attempts WHERE ended_at >= ?`,
    ),
    touchWorker: p(
      `INSERT INTO ckpt_workers (worker_id, host, pid, started_at, heartbeat_at, mode, mode_since, mode_reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, mode = excluded.mode,
         mode_since = excluded.mode_since, mode_reason = excluded.mode_reason`,
    ),
    removeWorker: p('DELETE FROM ckpt_workers WHERE worker_id = ?'),
    workers: p('SELECT * FROM ckpt_workers ORDER BY worker_id'),
  };
}

/** An unfinished after-action: one that takes the file away (see takesFileAway). */
const isUnfinishedLabel = takesFileAway;
