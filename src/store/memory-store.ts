import { randomUUID } from 'node:crypto';
import { idempotencyKey } from './idempotency.js';
import { DEFAULT_RETRY } from './retry-policy.js';
import { type FailPlan, SWEEP_BATCH, discoverStep, expiryStatus, failureAfterAction, failureCompletedAt, failureOutcome, leaseExpiredError, planFailure } from './rules/transitions.js';
import { iso } from './time.js';
import { durationOf, movedBackLabel, tombstoneLiftedLabel } from './record.js';
import { MemoryHistory } from './memory-history.js';
import { activityOf } from './activity.js';
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
  type ExpiredClaim,
  type FailResult,
  type Failure,
  type FileRecord,
  fileTypeAllowed,
  type ListQuery,
  type PurgeQuery,
  type TombstoneExpiryQuery,
  type RequeueQuery,
  type RetryPolicy,
  type Status,
  type StoreStats,
  type WorkerInfo,
  type WorkerRecord,
  type WriteResult,
  type Tombstone,
} from './types.js';

export interface MemoryStoreOptions {
  retry?: RetryPolicy;
  onChange?: ChangePolicy;
  random?: () => number;
}

/** What fail() will do, decided before anything changes (the fallback records it elsewhere first). */
export type { FailPlan } from './rules/transitions.js';

interface Row extends FileRecord {
  /** Insertion order: breaks ties between equal due times the way SQLite's rowid does. */
  seq: number;
}

/**
 * The whole CheckpointStore contract in process memory: the same transitions (rules/transitions.ts), tokens, retry
 * policy, tombstones and ordering as SqliteStore (both run test/contract/store-contract.ts), but
 * nothing survives the process and nothing is shared with another process.
 *
 * Used on its own in tests and by programs that want no database, and by the FallbackStore as
 * the working set while the database is locked or broken (the fallback adds the durability and
 * the cross-process exclusion that this class does not have: journal and claim markers).
 *
 * Every method is synchronous underneath; the promises only match the interface.
 */
export class MemoryStore implements CheckpointStore {
  readonly kind = 'memory' as const;
  private readonly rows = new Map<string, Row>();
  private readonly history = new MemoryHistory();
  private readonly tombstones = new Map<string, Tombstone>();
  private readonly workerRows = new Map<string, WorkerRecord>();
  private readonly retry: RetryPolicy;
  private readonly onChange: ChangePolicy;
  private readonly random: () => number;
  private seq = 0;

  constructor(opts: MemoryStoreOptions = {}) {
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.onChange = opts.onChange ?? 'reprocess';
    this.random = opts.random ?? Math.random;
  }

  // ---- the contract ---------------------------------------------------------------------------

  discover(files: readonly DiscoveredFile[], now: number, opts?: DiscoverOptions): Promise<DiscoverResult> {
    const res: DiscoverResult = { inserted: 0, reversioned: 0, unchanged: 0, tombstoned: 0 };
    const nowIso = iso(now);
    const policy = opts?.onChange ?? this.onChange;
    for (const f of files) if (!opts?.stillThere || opts.stillThere(f)) this.discoverOne(f, nowIso, policy, res);
    return Promise.resolve(res);
  }

  private discoverOne(f: DiscoveredFile, nowIso: string, policy: ChangePolicy, res: DiscoverResult): void {
    const ts = iso(f.mtimeMs);
    const tomb = this.tombstones.get(f.fileUrl);
    const cur = this.rows.get(f.fileUrl);
    if (!cur) {
      const next = discoverStep(tomb ? { tombstone: tomb } : null, f.fingerprint, policy);
      if (next.step !== 'insert') {
        res.tombstoned++;
        return;
      }
      if (next.liftsTombstone) this.tombstones.delete(f.fileUrl);
      this.rows.set(f.fileUrl, this.newRow(f, ts, nowIso, next.version));
      res.inserted++;
      return;
    }
    const step = discoverStep({ row: cur }, f.fingerprint, policy).step;
    if (step === 'reversion') {
      this.reversion(cur, f, ts, nowIso);
      res.reversioned++;
      return;
    }
    if (step === 'refresh') Object.assign(cur, { fileTimestamp: ts, fingerprint: f.fingerprint, fileSize: f.size, updatedAt: nowIso });
    res.unchanged++;
  }

  /** Completed or dead, and new content: the next version, from the start. */
  private reversion(cur: Row, f: DiscoveredFile, ts: string, nowIso: string): void {
    Object.assign(cur, {
      status: 'pending',
      version: cur.version + 1,
      attempts: 0,
      retryCount: 0,
      fileType: f.fileType,
      fileTimestamp: ts,
      fingerprint: f.fingerprint,
      fileSize: f.size,
      dueAt: nowIso,
      recordsTotal: 0,
      recordsFiltered: 0,
      recordsPersisted: 0,
      processingTimeMs: 0,
      errorMessage: null,
      startedAt: null,
      completedAt: null,
      claimToken: null,
      handlerPid: null,
      afterAction: null,
      updatedAt: nowIso,
    } satisfies Partial<Row>);
  }

  private newRow(f: DiscoveredFile, ts: string, nowIso: string, version: number): Row {
    return {
      seq: ++this.seq,
      fileUrl: f.fileUrl,
      fileType: f.fileType,
      fileTimestamp: ts,
      status: 'pending',
      recordsTotal: 0,
      recordsFiltered: 0,
      recordsPersisted: 0,
      processingTimeMs: 0,
      errorMessage: null,
      retryCount: 0,
      processedBy: null,
      startedAt: null,
      completedAt: null,
      createdAt: nowIso,
      version,
      attempts: 0,
      fingerprint: f.fingerprint,
      fileSize: f.size,
      claimToken: null,
      dueAt: nowIso,
      handlerPid: null,
      afterAction: null,
      updatedAt: nowIso,
    };
  }

  claim(n: number, opts: ClaimOptions): Promise<Claim[]> {
    const nowIso = iso(opts.now);
    this.sweepExpiredLeases(opts.now, nowIso, opts);
    const ready = this.claimable(nowIso)
      .filter((r) => fileTypeAllowed(opts.fileTypes, r.fileType))
      .slice(0, Math.max(0, n));
    const prefix = `${randomUUID()}.`;
    return Promise.resolve(ready.map((r) => this.take(r, prefix, opts)));
  }

  claimFile(fileUrl: string, opts: ClaimOptions): Promise<Claim | null> {
    const nowIso = iso(opts.now);
    this.sweepExpiredLeases(opts.now, nowIso, opts);
    const r = this.rows.get(fileUrl);
    if (!r || !isReady(r, nowIso)) return Promise.resolve(null);
    return Promise.resolve(this.take(r, `${randomUUID()}.`, opts));
  }

  /** Pending, or failed and due, in first-in-first-out order (due time, then insertion). */
  private claimable(nowIso: string): Row[] {
    const out: Row[] = [];
    for (const r of this.rows.values()) if (isReady(r, nowIso)) out.push(r);
    return out.sort(byDue);
  }

  private take(r: Row, prefix: string, opts: ClaimOptions): Claim {
    const nowIso = iso(opts.now);
    r.status = 'processing';
    r.claimToken = `${prefix}${++this.seq}`;
    r.processedBy = opts.workerId;
    r.startedAt = nowIso;
    r.dueAt = iso(opts.now + opts.leaseMs);
    r.attempts += 1;
    r.handlerPid = null;
    r.updatedAt = nowIso;
    return toClaim(r, opts.now + opts.leaseMs);
  }

  private sweepExpiredLeases(now: number, nowIso: string, opts: ClaimOptions): void {
    const rows: Row[] = [];
    for (const r of this.rows.values()) if (r.status === 'processing' && r.dueAt !== null && r.dueAt <= nowIso) rows.push(r);
    if (rows.length === 0) return;
    rows.sort(byDue);
    rows.length = Math.min(rows.length, SWEEP_BATCH);
    const expired: ExpiredClaim[] = rows.map((r) => ({
      fileUrl: r.fileUrl,
      version: r.version,
      attempt: r.attempts,
      token: r.claimToken ?? '',
      workerId: r.processedBy,
      handlerPid: r.handlerPid,
      status: expiryStatus(opts.routeOf?.(r.fileType)?.retry ?? this.retry, r.retryCount),
    }));
    opts.onExpired?.(expired);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const e = expired[i]!;
      const plan = planFailure(opts.routeOf?.(r.fileType)?.retry ?? this.retry, r.retryCount, false, now, this.random);
      const error = leaseExpiredError(e.workerId);
      Object.assign(r, {
        status: plan.status,
        retryCount: plan.retryCount,
        dueAt: plan.dueAt === null ? null : iso(plan.dueAt),
        errorMessage: error,
        completedAt: failureCompletedAt(plan.status, nowIso),
        handlerPid: null,
        updatedAt: nowIso,
      } satisfies Partial<Row>);
      this.history.add(r, e.workerId ?? '?', nowIso, 'lease_expired', error, durationOf(r.startedAt, now), null);
    }
  }

  heartbeat(refs: readonly ClaimRef[], leaseMs: number, now: number): Promise<ClaimRef[]> {
    const lost: ClaimRef[] = [];
    for (const ref of refs) {
      const r = this.held(ref);
      if (!r) {
        lost.push(ref);
        continue;
      }
      r.dueAt = iso(now + leaseMs);
      r.updatedAt = iso(now);
    }
    return Promise.resolve(lost);
  }

  setHandlerPid(ref: ClaimRef, pid: number): Promise<WriteResult> {
    const r = this.held(ref);
    if (!r) return Promise.resolve('lost');
    r.handlerPid = pid;
    return Promise.resolve('ok');
  }

  complete(items: readonly Completion[]): Promise<WriteResult[]> {
    return Promise.resolve(items.map((c) => this.completeOne(c)));
  }

  private completeOne(c: Completion): WriteResult {
    const r = this.held(c);
    if (!r) return 'lost';
    const nowIso = iso(c.now);
    const st = c.stats;
    Object.assign(r, {
      status: 'completed',
      recordsTotal: st.totalRows,
      recordsFiltered: st.filteredRows,
      recordsPersisted: st.persistedRows,
      processingTimeMs: Math.round(st.durationMs),
      completedAt: nowIso,
      afterAction: c.afterAction ?? null,
      // The content the handler really read, when the worker checked it (see Completion).
      fingerprint: c.fingerprint ?? r.fingerprint,
      errorMessage: null,
      dueAt: null,
      handlerPid: null,
      updatedAt: nowIso,
    } satisfies Partial<Row>);
    this.history.add(r, r.processedBy ?? '?', nowIso, 'completed', null, Math.round(st.durationMs), c.afterAction ?? null);
    return 'ok';
  }

  /** What fail() would do for this claim, or 'lost'; changes nothing. */
  planFail(f: Failure): FailPlan | 'lost' {
    const r = this.held(f);
    return r ? planFailure(f.retry ?? this.retry, r.retryCount, f.permanent, f.now, this.random) : 'lost';
  }

  /** Apply a plan from planFail() (the token is checked again). */
  applyFail(f: Failure, plan: FailPlan): FailResult {
    const r = this.held(f);
    if (!r) return 'lost';
    const nowIso = iso(f.now);
    // As in SQLite: the after-action planned for a dead file is recorded with the outcome.
    const after = failureAfterAction(plan.status, f.deadAfterAction);
    Object.assign(r, {
      status: plan.status,
      retryCount: plan.retryCount,
      dueAt: plan.dueAt === null ? null : iso(plan.dueAt),
      errorMessage: f.error,
      processingTimeMs: Math.round(f.durationMs),
      completedAt: failureCompletedAt(plan.status, nowIso),
      fingerprint: f.fingerprint ?? r.fingerprint,
      handlerPid: null,
      afterAction: after,
      updatedAt: nowIso,
    } satisfies Partial<Row>);
    this.history.add(r, r.processedBy ?? '?', nowIso, failureOutcome(f.reason, f.permanent, plan.status), f.error, Math.round(f.durationMs), after);
    return plan.status;
  }

  fail(f: Failure): Promise<FailResult> {
    const plan = this.planFail(f);
    return Promise.resolve(plan === 'lost' ? 'lost' : this.applyFail(f, plan));
  }

  release(refs: readonly ClaimRef[], now: number): Promise<WriteResult[]> {
    const nowIso = iso(now);
    return Promise.resolve(
      refs.map((ref): WriteResult => {
        const r = this.held(ref);
        if (!r) return 'lost';
        Object.assign(r, { status: 'pending', dueAt: nowIso, handlerPid: null, updatedAt: nowIso } satisfies Partial<Row>);
        this.history.add(r, r.processedBy ?? '?', nowIso, 'released', null, durationOf(r.startedAt, now), null);
        return 'ok';
      }),
    );
  }

  requeue(q: RequeueQuery): Promise<number> {
    const nowIso = iso(q.now);
    let n = 0;
    const back = (r: Row) => {
      Object.assign(r, { status: 'pending', retryCount: 0, dueAt: nowIso, errorMessage: null, completedAt: null, afterAction: null, updatedAt: nowIso } satisfies Partial<Row>);
      const from = q.movedBack?.get(r.fileUrl);
      this.history.addEvent(r, q.by ?? 'ckpt retry', nowIso, from === undefined ? null : movedBackLabel(from));
      n++;
    };
    if (q.files) {
      for (const f of q.files) {
        const r = this.rows.get(f);
        if (r && (r.status === 'failed' || r.status === 'dead')) back(r);
      }
    }
    if (q.dead) {
      for (const r of this.rows.values()) if (r.status === 'dead' && (q.fileType === undefined || r.fileType === q.fileType)) back(r);
    }
    return Promise.resolve(n);
  }

  tombstone(fileUrl: string): Promise<Tombstone | null> {
    const t = this.tombstones.get(fileUrl);
    return Promise.resolve(t ? { ...t } : null);
  }

  revive(f: DiscoveredFile, q: { now: number; by?: string }): Promise<Tombstone | null> {
    const t = this.tombstones.get(f.fileUrl);
    if (!t || this.rows.has(f.fileUrl)) return Promise.resolve(null);
    const nowIso = iso(q.now);
    this.tombstones.delete(f.fileUrl);
    const r = this.newRow(f, iso(f.mtimeMs), nowIso, t.version + 1);
    this.rows.set(f.fileUrl, r);
    this.history.addEvent(r, q.by ?? 'ckpt retry', nowIso, tombstoneLiftedLabel(t));
    return Promise.resolve({ ...t });
  }

  recordAfterAction(d: AfterActionDone): Promise<void> {
    this.history.recordAfterAction(d.fileUrl, d.token, d.done);
    return Promise.resolve();
  }

  get(fileUrl: string): Promise<FileRecord | null> {
    const r = this.rows.get(fileUrl);
    return Promise.resolve(r ? toRecord(r) : null);
  }

  list(q: ListQuery): Promise<FileRecord[]> {
    const since = q.since === undefined ? undefined : iso(q.since);
    const out = [...this.rows.values()]
      .filter(
        (r) =>
          (q.status === undefined || r.status === q.status) &&
          (q.fileType === undefined || r.fileType === q.fileType) &&
          (since === undefined || r.updatedAt >= since) &&
          (q.after === undefined || r.fileUrl > q.after),
      )
      .sort((a, b) => (a.fileUrl < b.fileUrl ? -1 : a.fileUrl > b.fileUrl ? 1 : 0))
      .slice(0, q.limit ?? 100);
    return Promise.resolve(out.map(toRecord));
  }

  attempts(fileUrl: string): Promise<AttemptRecord[]> {
    return Promise.resolve(this.history.list(fileUrl));
  }

  counts(): Promise<Record<Status, number>> {
    const out: Record<Status, number> = { pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 };
    for (const r of this.rows.values()) out[r.status]++;
    return Promise.resolve(out);
  }

  async stats(now: number): Promise<StoreStats> {
    const counts = await this.counts();
    let oldest: string | null = null;
    for (const r of this.rows.values()) {
      if (r.status === 'pending' && r.dueAt !== null && (oldest === null || r.dueAt < oldest)) oldest = r.dueAt;
    }
    return { counts, oldestPendingAt: oldest, ...this.history.recent(now) };
  }

  activity(q: ActivityQuery): Promise<Activity> {
    return Promise.all([this.stats(q.now), this.workers()]).then(([stats, workers]) => ({
      stats,
      workers,
      ...activityOf(this.rows.values(), this.history.all(), q),
    }));
  }

  purge(q: PurgeQuery): Promise<number> {
    const statuses = new Set(q.statuses.filter((s) => s === 'completed' || s === 'dead'));
    const cut = iso(q.now - q.olderThanMs);
    const nowIso = iso(q.now);
    let n = 0;
    for (const [url, r] of [...this.rows]) {
      if (n === q.limit) break;
      if (!statuses.has(r.status as 'completed' | 'dead') || !(r.updatedAt < cut)) continue;
      this.tombstones.set(url, { fileUrl: url, fingerprint: r.fingerprint, version: r.version, status: r.status, purgedAt: nowIso });
      this.history.delete(url);
      this.rows.delete(url);
      n++;
    }
    return Promise.resolve(n);
  }

  expireTombstones(q: TombstoneExpiryQuery): Promise<number> {
    const cut = iso(q.now - q.olderThanMs);
    let n = 0;
    for (const [url, t] of [...this.tombstones]) {
      if (n === q.limit) break;
      if (t.purgedAt < cut && this.tombstones.delete(url)) n++;
    }
    return Promise.resolve(n);
  }

  touchWorker(w: WorkerInfo, now: number): Promise<void> {
    const nowIso = iso(now);
    const prev = this.workerRows.get(w.workerId);
    this.workerRows.set(w.workerId, {
      workerId: w.workerId,
      host: prev?.host ?? w.host,
      pid: prev?.pid ?? w.pid,
      startedAt: prev?.startedAt ?? nowIso,
      heartbeatAt: nowIso,
      mode: w.mode,
      modeSince: w.modeSince === null ? null : iso(w.modeSince),
      modeReason: w.modeReason,
    });
    return Promise.resolve();
  }

  removeWorker(workerId: string): Promise<void> {
    this.workerRows.delete(workerId);
    return Promise.resolve();
  }

  workers(): Promise<WorkerRecord[]> {
    return Promise.resolve([...this.workerRows.values()].sort((a, b) => (a.workerId < b.workerId ? -1 : 1)).map((w) => ({ ...w })));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  // ---- for the fallback -----------------------------------------------------------------------

  /** A copy of the record, or undefined. */
  peek(fileUrl: string): FileRecord | undefined {
    const r = this.rows.get(fileUrl);
    return r ? toRecord(r) : undefined;
  }

  /** The record held under this token (processing), or undefined. */
  peekHeld(ref: ClaimRef): FileRecord | undefined {
    const r = this.held(ref);
    return r ? toRecord(r) : undefined;
  }

  /**
   * Insert or replace a whole record, e.g. what the database says about a file, so that the
   * memory answers the same (a completed file stays completed). Keeps the insertion order of
   * a record that was there already.
   */
  put(rec: FileRecord): void {
    const prev = this.rows.get(rec.fileUrl);
    this.rows.set(rec.fileUrl, { ...rec, seq: prev?.seq ?? ++this.seq });
  }

  has(fileUrl: string): boolean {
    return this.rows.has(fileUrl);
  }

  get size(): number {
    return this.rows.size;
  }

  /** Every record (copies), in insertion order. */
  records(): FileRecord[] {
    return [...this.rows.values()].map(toRecord);
  }

  private held(ref: ClaimRef): Row | undefined {
    const r = this.rows.get(ref.fileUrl);
    return r && r.status === 'processing' && r.claimToken === ref.token ? r : undefined;
  }
}

function isReady(r: Row, nowIso: string): boolean {
  return (r.status === 'pending' || r.status === 'failed') && r.dueAt !== null && r.dueAt <= nowIso;
}

function byDue(a: Row, b: Row): number {
  const da = a.dueAt ?? '';
  const db = b.dueAt ?? '';
  return da < db ? -1 : da > db ? 1 : a.seq - b.seq;
}

function toClaim(r: Row, leaseExpiresAt: number): Claim {
  return {
    fileUrl: r.fileUrl,
    fileType: r.fileType,
    version: r.version,
    attempt: r.attempts,
    retryCount: r.retryCount,
    token: r.claimToken ?? '',
    fingerprint: r.fingerprint,
    leaseExpiresAt,
    idempotencyKey: idempotencyKey(r.fileUrl, r.version),
  };
}

function toRecord(r: Row | FileRecord): FileRecord {
  const { seq: _seq, ...rec } = r as Row;
  return { ...rec };
}
