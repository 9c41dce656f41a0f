import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_RETRY } from '../retry-policy.js';
import { StoreUnavailableError } from '../sqlite-errors.js';
import { iso } from '../time.js';
import type {
  Activity,
  ActivityQuery,
  AfterActionDone,
  AttemptRecord,
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
  UnfinishedAfterAction,
  WorkerInfo,
  WorkerRecord,
  WriteResult,
} from '../types.js';
import { CallGate } from './call-gate.js';
import { ClaimMarkers } from './claim-markers.js';
import { DegradedMode, type DegradedDeps } from './degraded.js';
import { DegradedReads } from './degraded-reads.js';
import { Journal } from './journal.js';
import { logCopies } from './lookup.js';
import { Maintenance } from './maintenance.js';
import { NormalScreen } from './normal-screen.js';
import { type MarkerAuthor, OpenClaims } from './open-claims.js';
import {
  DEFAULT_HEALTH_CHECK_MS,
  DEFAULT_PROBE_MS,
  DEFAULT_SNAPSHOT_MS,
  DEGRADED_LOG_MS,
  type FallbackStoreOptions,
  type ModeInfo,
} from './options.js';
import { type FallbackPrimary, type Maybe, drive, isPromise } from './primary.js';
import { type ProcessIdentity, selfIdentity } from './process-identity.js';
import { Recovery } from './recovery.js';
import { type ReplayStats, emptyStats } from './replay.js';
import type { SalvageReport } from './salvage.js';
import { SqlitePrimary } from './sqlite-primary.js';
import { openAtStart } from './start-up.js';
import { StateFile } from './state-files.js';

export { DEFAULT_HEALTH_CHECK_MS, DEFAULT_PROBE_MS, DEFAULT_SNAPSHOT_MS, DEGRADED_LOG_MS } from './options.js';
export type { FallbackOptions, FallbackStoreOptions, ModeInfo } from './options.js';

type State = 'normal' | 'degraded';

/**
 * A CheckpointStore that keeps working when the SQLite database is locked or broken.
 *
 * Normal mode: every call goes to the SQLite store. When a call fails with
 * StoreUnavailableError (a lock held longer than lockTimeoutMs, or a broken file), the store
 * switches to degraded mode and serves the same call, and every later one, from memory:
 * - discovery and claims go on in a MemoryStore; before a file is handed out, the database is
 *   asked by a read (or a private copy of it, see Lookup) and a claim marker is taken
 *   (ClaimMarkers), so a completed file is not run again and two local processes never run the
 *   same file;
 * - every outcome is appended to a journal and fsynced before the call returns;
 * - a probe every second checks whether the database is writable again; a corrupt file is
 *   moved aside and salvaged first. Then the journals are replayed, this process's open claims
 *   are written into the database under their own tokens, the markers are cleared, and the
 *   store is back in normal mode.
 * At open, journals left by processes that died are replayed before anything else.
 *
 * The two sides meet without a shared lock in the order "write mine, then read theirs": a
 * degraded process creates its marker and then reads the database; a normal process commits
 * its claim and then looks for a marker. Whichever comes second sees the other, so at most
 * one of them runs the file (possibly neither, for one round).
 *
 * This class routes each call by mode and owns the mode switch. Beside it: degraded.ts (degraded
 * mode, which exists only while degraded) with vetting.ts and degraded-reads.ts; recovery.ts
 * (probe, salvage, replay, the way back) and start-up.ts; normal-screen.ts (the normal-mode side
 * of markers); call-gate.ts, open-claims.ts, maintenance.ts, state-files.ts, options.ts; and
 * inspect.ts (the read-only view for the CLI).
 */
export class FallbackStore implements CheckpointStore {
  readonly kind: 'sqlite' | 'postgres';
  readonly dir: string;
  /** Where the work goes in normal mode, and what the fallback asks of it (primary.ts). */
  private readonly db: FallbackPrimary;
  /** The same primary when it is SQLite: quick_check, snapshots, salvage, the replaced-file check. */
  private readonly sq: SqlitePrimary | null;
  /** Holds calls while the start or a recovery runs asynchronously (PostgreSQL). */
  private readonly gate = new CallGate();
  private startError: unknown = null;
  /** Degraded mode, while degraded (null: normal). */
  private degraded: DegradedMode | null = null;
  private modeInfo: ModeInfo = { mode: 'normal', since: null, reason: null, kind: null };
  private readonly open = new OpenClaims();
  private readonly markers: ClaimMarkers;
  private readonly journal: Journal;
  private readonly stateFile: StateFile;
  /** Getting back to normal mode, and replaying what dead processes left behind. */
  private readonly recovery: Recovery;
  /** The normal-mode side of coexisting with degraded processes' markers. */
  private readonly screen: NormalScreen;
  /** Reads while degraded: the database's answer when it can be read, else memory's. */
  private readonly reads: DegradedReads;
  private readonly log: Logger | undefined;
  private readonly workerId: string;
  private readonly self: ProcessIdentity;
  /** Tells this store's markers from those of another store in the same process. */
  private readonly instance = randomUUID();
  /** Who this store's claim markers and salvage locks say wrote them. */
  private readonly author: MarkerAuthor;
  private readonly probeMs: number;
  private readonly clock: () => number;
  private readonly retry: RetryPolicy;
  /** Normal-mode upkeep on timers: health check, snapshot. */
  private readonly upkeep: Maintenance;
  private closed = false;
  private worker: WorkerInfo | null = null;
  /** Counters for `ckpt status`, tests and logs. */
  readonly counters = { degradedEpisodes: 0, replayed: emptyStats(), salvages: 0, deferredForMarkers: 0, protectedLeases: 0, fencedOutcomes: 0 };

  /** The database file (SQLite), or `postgres host:port/db`. */
  readonly file: string;

  /**
   * `target`: a SQLite file path, or a FallbackPrimary (PostgreSQL: see
   * ../postgres/fallback-primary.ts; use FallbackStore.open() to wait for its start).
   */
  constructor(
    target: string | FallbackPrimary,
    private readonly opts: FallbackStoreOptions = {},
  ) {
    const f = opts.fallback ?? {};
    ({ db: this.db, sq: this.sq, dir: this.dir } = primaryFor(target, opts));
    this.kind = this.db.kind;
    this.file = this.db.location;
    this.log = f.logger;
    this.workerId = f.workerId ?? `${os.hostname()}:${process.pid}`;
    this.self = selfIdentity();
    this.probeMs = f.probeMs ?? DEFAULT_PROBE_MS;
    this.clock = f.clock ?? Date.now;
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.upkeep = new Maintenance({
      dir: this.dir, sq: this.sq, healthCheckMs: f.healthCheckMs ?? DEFAULT_HEALTH_CHECK_MS, snapshotMs: f.snapshotMs ?? DEFAULT_SNAPSHOT_MS,
      fileMode: opts.fileMode ?? 0o600, clock: this.clock, log: this.log,
      normal: () => this.state === 'normal', open: () => this.primary !== null, closed: () => this.closed, degrade: (err) => this.degrade(err),
    });
    this.markers = new ClaimMarkers(path.join(this.dir, 'claims'), opts.fileMode ?? 0o600);
    this.journal = new Journal(this.dir, this.workerId, this.self, opts.fileMode ?? 0o600);
    this.author = { owner: this.self, instance: this.instance, workerId: this.workerId };
    this.stateFile = new StateFile(this.dir, this.workerId, this.self, opts.fileMode ?? 0o600, this.log);
    this.recovery = new Recovery({
      kind: this.kind, file: this.file, dir: this.dir, author: this.author, self: this.self, fileMode: opts.fileMode, db: this.db, sq: this.sq,
      markers: this.markers, locks: new ClaimMarkers(path.join(this.dir, 'locks'), opts.fileMode ?? 0o600), journal: this.journal, open: this.open,
      probeMs: this.probeMs, degradedLogMs: f.degradedLogMs ?? DEGRADED_LOG_MS, clock: this.clock, log: this.log, counters: this.counters,
      localPath: f.localPath ?? ((p) => p),
      mode: () => this.modeInfo,
      closed: () => this.closed,
      idle: () => this.gate.idle(),
      degrade: (err) => this.degrade(err),
      backToNormal: (now, stats) => this.backToNormal(now, stats),
      recoverNow: () => this.recoverNow(),
      discover: (files, now) => this.discover(files, now),
    });
    this.reads = new DegradedReads({
      db: this.db, clock: this.clock, corrupt: () => this.recovery.corrupt, replaced: () => this.recovery.fileReplaced(), broken: () => this.modeInfo.kind === 'broken',
    });
    this.screen = new NormalScreen({
      db: this.db, markers: this.markers, probeMs: this.probeMs, clock: this.clock, log: this.log, counters: this.counters,
      reconcileOrphans: () => this.recovery.reconcileOrphans(),
    });
    const started = drive(this.startSteps(f.checkAtOpen ?? true));
    if (isPromise(started)) {
      this.gate.hold(
        started.then(
          () => undefined,
          (err: unknown) => {
            this.startError = err;
          },
        ),
      );
    }
  }

  /**
   * A FallbackStore that has finished starting (PostgreSQL: connected and migrated, or
   * degraded because the server cannot be reached; journals left behind replayed). Errors that
   * are not unavailability (a wrong password, a schema from a newer ckpt) are thrown.
   */
  static async open(target: string | FallbackPrimary, opts: FallbackStoreOptions = {}): Promise<FallbackStore> {
    const s = new FallbackStore(target, opts);
    await s.gate.held;
    if (s.startError !== null) {
      await s.close().catch(() => undefined);
      throw s.startError;
    }
    return s;
  }

  /** The report of this process's last salvage (salvage-run.ts). */
  get lastSalvage(): SalvageReport | null {
    return this.recovery.lastSalvage;
  }

  private get state(): State {
    return this.degraded ? 'degraded' : 'normal';
  }

  private *startSteps(check: boolean): Generator<unknown, void, unknown> {
    yield* openAtStart(check, {
      kind: this.kind, file: this.file, dir: this.dir, host: this.self.host, sq: this.sq, log: this.log, recovery: this.recovery,
      degrade: (err) => this.degrade(err),
    });
    if (this.state === 'normal') this.writeState();
    this.upkeep.start();
  }

  /** quick_check through a fresh connection (maintenance.ts). */
  healthCheck(): void {
    this.upkeep.healthCheck();
  }

  /** Take a snapshot if the last one is older than the period (maintenance.ts). */
  snapshot(force = false): Promise<void> {
    return this.upkeep.snapshot(force);
  }

  /** Normal or degraded, since when and why: for `ckpt status`, /healthz and logs. */
  mode(): ModeInfo {
    return { ...this.modeInfo };
  }

  /** The normal-mode store, while open. */
  private get primary(): CheckpointStore | null {
    return this.db.store;
  }

  // ---- mode switching --------------------------------------------------------------------------

  private degrade(err: StoreUnavailableError): void {
    this.recovery.note(err);
    const now = this.clock();
    if (this.state === 'degraded') {
      if (err.kind === 'broken' && this.modeInfo.kind !== 'broken') {
        this.modeInfo = { ...this.modeInfo, kind: 'broken', reason: err.message };
        this.writeState();
      }
      return;
    }
    this.counters.degradedEpisodes++;
    this.modeInfo = { mode: 'degraded', since: now, reason: err.message, kind: err.kind };
    this.log?.error(
      { kind: err.kind, code: err.code, reason: err.message, dir: this.dir, openClaims: this.open.size },
      'database unavailable: switching to degraded mode (work goes on in memory; outcomes go to a journal until the database is back)',
    );
    const degraded = new DegradedMode(this.degradedDeps());
    this.degraded = degraded;
    this.db.setDegradedReads(true);
    for (const o of this.open.values()) degraded.adopt(o, now);
    this.writeState();
    this.recovery.startTimers();
    // A broken file: try to salvage right away rather than after the first probe period.
    if (err.kind === 'broken' && !this.closed) setImmediate(() => void this.recovery.probe());
  }

  /**
   * One recovery attempt (recovery.ts). With SQLite it is synchronous: the whole switch back
   * happens in one turn of the event loop, so no call interleaves. With PostgreSQL it takes
   * round trips: the gate holds every new call until it is over, and it starts only once no
   * degraded call is in progress.
   */
  private recoverNow(): Maybe<boolean> {
    if (this.state !== 'degraded' || this.recovery.recovering || this.closed) return false;
    const r = drive(this.recovery.steps());
    if (!isPromise(r)) return r;
    this.gate.hold(r.then(() => undefined));
    return r;
  }

  /** The switch back, once recovery has replayed everything into the database. */
  private backToNormal(now: number, stats: ReplayStats): void {
    const ended = this.degraded;
    const since = this.modeInfo.since ?? now;
    ended?.end();
    this.degraded = null;
    this.modeInfo = { mode: 'normal', since: now, reason: null, kind: null };
    for (const o of this.open.values()) o.marker = null;
    this.recovery.stopTimers();
    this.db.endEpisode();
    this.db.setDegradedReads(false);
    this.writeState();
    this.log?.info(
      { degradedForMs: now - since, replayed: stats.applied, skipped: stats.skipped, conflicts: stats.conflicts, inserted: stats.inserted, openClaims: this.open.size },
      'database available again: journal replayed, back to normal mode',
    );
    if (ended && this.primary) this.recovery.rediscoverSeen(ended.memory);
    if (this.worker) void this.touchWorker({ ...this.worker, mode: 'normal', modeSince: now, modeReason: null }, now).catch(() => {});
  }

  // ---- normal-mode plumbing -----------------------------------------------------------------------

  /**
   * Run `fn` on the database in normal mode; on StoreUnavailableError switch to degraded mode
   * and answer from `degraded` instead. Other errors (bugs, constraints) pass through.
   */
  private async route<T>(fn: (p: CheckpointStore) => Promise<T>, degraded: (d: DegradedMode) => Promise<T> | T): Promise<T> {
    for (;;) {
      // A recovery in progress (PostgreSQL only; SQLite recovers within one turn): wait for it.
      if (this.gate.held) await this.gate.held;
      if (this.closed) throw new Error('store is closed');
      if (this.state === 'normal') this.checkReplaced();
      if (this.state === 'normal' && this.primary) {
        try {
          return await fn(this.primary);
        } catch (err) {
          if (!(err instanceof StoreUnavailableError)) throw err;
          this.degrade(err);
        }
      }
      // A recovery began while this call waited on the database: ask again once it is over.
      if (this.gate.held) continue;
      const d = this.degraded;
      // Normal without a database cannot happen (a failed open degrades); say so if it does.
      if (!d) throw new Error(`store is neither open nor degraded (${this.file})`);
      return await this.gate.degraded(() => degraded(d));
    }
  }

  /**
   * Before each call: another process salvaged the file (new inode) or is salvaging it. Two
   * stat calls (a few microseconds) per call, and the runner batches claims and completions,
   * so per file it is less. Not rate-limited: a completion written to the file that was just
   * moved aside would be lost from the new one.
   */
  private checkReplaced(): void {
    if (!this.primary || !this.sq) return;
    if (this.recovery.fileReplaced() || this.recovery.salvageLockStands()) {
      this.degrade(new StoreUnavailableError('broken', `database file ${this.file} was replaced or is being salvaged by another process`, undefined));
    }
  }

  /** A claim the database granted; one granted after another call switched to degraded mode is adopted. */
  private track(c: Claim, workerId: string, now: number): void {
    const o = this.open.granted(c, workerId, now);
    if (this.degraded && !this.degraded.memory.peekHeld(c)) this.degraded.adopt(o, now);
  }

  private degradedDeps(): DegradedDeps {
    return {
      kind: this.kind, author: this.author, workerId: this.workerId, db: this.db, markers: this.markers, journal: this.journal,
      open: this.open, opts: this.opts, retry: this.retry, probeMs: this.probeMs, clock: this.clock, log: this.log, counters: this.counters,
      looked: (fileUrl, now) => this.reads.looked(fileUrl, now),
      mayAskDatabase: () => this.reads.mayAsk(),
      onDiskAsSeen: (stored, fingerprint) => this.recovery.onDiskAsSeen(stored, fingerprint),
    };
  }

  /** This process's mode for `ckpt status` and `ckpt doctor` (state-files.ts). */
  private writeState(): void {
    this.stateFile.write(this.modeInfo, this.open.size, this.journal.file, this.clock());
  }

  // ---- the contract ---------------------------------------------------------------------------------

  discover(files: readonly DiscoveredFile[], now: number, opts?: DiscoverOptions): Promise<DiscoverResult> {
    return this.route(
      async (p) => {
        const r = await p.discover(files, now, opts);
        this.db.noteDiscovered?.(files.map((f) => f.fileUrl));
        return r;
      },
      (d) => d.discover(opts?.stillThere ? files.filter(opts.stillThere) : files, now, opts?.onChange),
    );
  }

  /** Only in normal mode: while degraded the recorded label cannot be changed, so nobody takes it. */
  takeAfterAction(item: UnfinishedAfterAction, workerId: string, now: number): Promise<boolean> {
    return this.route(
      (p) => p.takeAfterAction?.(item, workerId, now) ?? Promise.resolve(false),
      () => false,
    );
  }

  claim(n: number, opts: ClaimOptions): Promise<Claim[]> {
    return this.route(
      async (p) => {
        const marked = await this.screen.protect(opts);
        const got = await p.claim(n, opts);
        const keep = await this.screen.screen(got, opts, marked);
        for (const c of keep) this.track(c, opts.workerId, opts.now);
        return keep;
      },
      (d) => d.claim(n, opts),
    );
  }

  async claimFile(fileUrl: string, opts: ClaimOptions): Promise<Claim | null> {
    return this.route(
      async (p) => {
        const marked = await this.screen.protect(opts);
        const c = await p.claimFile(fileUrl, opts);
        if (!c) return null;
        const [keep] = await this.screen.screen([c], opts, marked);
        if (keep) this.track(keep, opts.workerId, opts.now);
        return keep ?? null;
      },
      async (d) => (await d.claim(1, opts, fileUrl))[0] ?? null,
    );
  }

  heartbeat(refs: readonly ClaimRef[], leaseMs: number, now: number): Promise<ClaimRef[]> {
    return this.route(
      async (p) => {
        const lost = await p.heartbeat(refs, leaseMs, now);
        this.open.renewed(refs, lost, leaseMs, now);
        return lost;
      },
      (d) => d.heartbeat(refs, leaseMs, now),
    );
  }

  setHandlerPid(ref: ClaimRef, pid: number): Promise<WriteResult> {
    const o = this.open.of(ref);
    if (o) o.handlerPid = pid;
    return this.route(
      (p) => p.setHandlerPid(ref, pid),
      (d) => d.setHandlerPid(o, ref, pid),
    );
  }

  complete(items: readonly Completion[]): Promise<WriteResult[]> {
    if (items.length === 0) return Promise.resolve([]);
    return this.route(
      async (p) => {
        const res = await p.complete(items);
        items.forEach((c) => this.open.untrack(c));
        return res;
      },
      (d) => d.complete(items),
    );
  }

  fail(item: Failure): Promise<FailResult> {
    return this.route(
      async (p) => {
        const res = await p.fail(item);
        this.open.untrack(item);
        return res;
      },
      (d) => d.fail(item),
    );
  }

  release(refs: readonly ClaimRef[], now: number): Promise<WriteResult[]> {
    if (refs.length === 0) return Promise.resolve([]);
    return this.route(
      async (p) => {
        const res = await p.release(refs, now);
        refs.forEach((r) => this.open.untrack(r));
        return res;
      },
      (d) => d.release(refs, now),
    );
  }

  requeue(q: RequeueQuery): Promise<number> {
    return this.route((p) => p.requeue(q), this.needsDatabase('requeue'));
  }

  purge(q: PurgeQuery): Promise<number> {
    return this.route((p) => p.purge(q), this.needsDatabase('purge'));
  }

  expireTombstones(q: TombstoneExpiryQuery): Promise<number> {
    return this.route((p) => p.expireTombstones(q), this.needsDatabase('expiring tombstones'));
  }

  tombstone(fileUrl: string): Promise<Tombstone | null> {
    return this.route((p) => p.tombstone(fileUrl), () => this.reads.tombstone(fileUrl));
  }

  revive(file: DiscoveredFile, q: { now: number; by?: string }): Promise<Tombstone | null> {
    return this.route((p) => p.revive(file, q), this.needsDatabase('lifting a tombstone'));
  }

  /** Only in normal mode: the history row it changes is in the database, not in the journal. */
  recordAfterAction(item: AfterActionDone): Promise<void> {
    return this.route(
      (p) => p.recordAfterAction(item),
      () => undefined,
    );
  }

  /** The degraded side of an operation that only the database can do: it fails, saying why. */
  private needsDatabase(what: string): () => never {
    return () => {
      throw new StoreUnavailableError(
        this.modeInfo.kind ?? 'locked',
        `${what} needs the database, which is unavailable (degraded since ${iso(this.modeInfo.since ?? 0)}: ${this.modeInfo.reason ?? '?'}); try again when it is back`,
        undefined,
      );
    };
  }

  get(fileUrl: string): Promise<FileRecord | null> {
    return this.route((p) => p.get(fileUrl), (d) => this.reads.get(d.memory, fileUrl));
  }

  list(q: ListQuery): Promise<FileRecord[]> {
    return this.route((p) => p.list(q), (d) => this.reads.list(d.memory, q));
  }

  attempts(fileUrl: string): Promise<AttemptRecord[]> {
    return this.route((p) => p.attempts(fileUrl), (d) => this.reads.attempts(d.memory, fileUrl));
  }

  counts(): Promise<Record<Status, number>> {
    return this.route((p) => p.counts(), (d) => this.reads.counts(d.memory));
  }

  stats(now: number): Promise<StoreStats> {
    return this.route((p) => p.stats(now), (d) => this.reads.stats(d.memory, now));
  }

  activity(q: ActivityQuery): Promise<Activity> {
    return this.route((p) => p.activity(q), (d) => this.reads.activity(d.memory, q));
  }

  touchWorker(w: WorkerInfo, now: number): Promise<void> {
    this.worker = w;
    return this.route(
      (p) => p.touchWorker(w, now),
      async (d) => {
        await d.memory.touchWorker(w, now);
        this.writeState();
      },
    );
  }

  removeWorker(workerId: string): Promise<void> {
    if (workerId === this.worker?.workerId) this.worker = null;
    return this.route(
      (p) => p.removeWorker(workerId),
      (d) => d.memory.removeWorker(workerId),
    );
  }

  workers(): Promise<WorkerRecord[]> {
    return this.route((p) => p.workers(), (d) => this.reads.workers(d.memory));
  }

  /** For tests and `ckpt doctor`: try to recover now instead of waiting for the probe. */
  async tryRecover(): Promise<boolean> {
    if (this.gate.held) await this.gate.held;
    return this.recoverNow();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Degraded at shutdown: one last try to get the outcomes into the database.
    if (this.gate.held) await this.gate.held;
    if (this.state === 'degraded') await this.recoverNow();
    this.closed = true;
    this.recovery.stopTimers();
    await this.upkeep.stop();
    this.journal.close();
    this.db.endEpisode();
    this.stateFile.remove();
    await this.db.close();
  }
}

/** The primary for a target, the same primary when it is SQLite, and the fallback folder. */
function primaryFor(target: string | FallbackPrimary, opts: FallbackStoreOptions): { db: FallbackPrimary; sq: SqlitePrimary | null; dir: string } {
  const f = opts.fallback ?? {};
  if (typeof target !== 'string') return { db: target, sq: target instanceof SqlitePrimary ? target : null, dir: f.dir ?? target.defaultFallbackDir };
  const file = path.resolve(target);
  const dir = f.dir ?? `${file}.fallback`;
  const sq = new SqlitePrimary(file, opts, `${file}.fallback`, logCopies(f.logger), dir);
  return { db: sq, sq, dir };
}
