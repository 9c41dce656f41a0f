import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_RETRY } from '../retry-policy.js';
import { StoreUnavailableError, toStoreError } from '../sqlite-errors.js';
import type { SqliteStoreOptions } from '../sqlite-store.js';
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
import { ClaimMarkers } from './claim-markers.js';
import { ROOM_AFTER_FULL, checkIntegrity, hasRoomFor, isCorruption } from './health-probe.js';
import { Journal, type JournalEntry, type ReadJournal, listJournals, orphanJournals, readJournal, removeJournal } from './journal.js';
import type { Looked } from './lookup.js';
import { type FallbackPrimary, type Maybe, drive, isPromise } from './primary.js';
import { SqlitePrimary } from './sqlite-primary.js';
import { type ProcessIdentity, isAlive, livenessOnce, selfIdentity } from './process-identity.js';
import { type ReplayStats, emptyStats } from './replay.js';
import type { SalvageReport } from './salvage.js';
import { SNAPSHOT_NAME } from './snapshot.js';
import { Maintenance } from './maintenance.js';
import { SalvageRun } from './salvage-run.js';
import { NormalScreen } from './normal-screen.js';
import { type MarkerAuthor, type OpenClaim, OpenClaims, carried as carriedClaim } from './open-claims.js';
import { DegradedMode, type DegradedDeps } from './degraded.js';
import { type FallbackState, removeStaleStates, stateFileOf, writeStateFile } from './state-files.js';
import { fingerprintOf } from '../../watch/fingerprint.js';

/**
 * Probe period while degraded. Each probe takes and drops the write lock with busy timeout 0
 * (well under a millisecond when free), so once a second costs nothing, and it bounds the
 * time from the lock's release to the journal's replay at about a second, far inside the
 * 10 s goal. Not in the config yet (a key `fallbackProbeMs` is proposed in the report).
 */
export const DEFAULT_PROBE_MS = 1_000;
/** While degraded, an error-level line this often says so (issue 4: "every minute"). */
export const DEGRADED_LOG_MS = 60_000;
/**
 * In normal mode, a fresh connection runs quick_check this often. The daemon's own connection
 * would not notice a file damaged underneath it for a long time: its page cache (16 MB by
 * default) still holds the good pages. quick_check took about 65 ms on a 55 MB file (docs/stack-behaviour.md).
 * Proposed config key: `healthCheckMs`.
 */
export const DEFAULT_HEALTH_CHECK_MS = 60_000;
/**
 * A snapshot of the database this often (see snapshot.ts): the file's whole size written once
 * an hour (1.3 GB a day for a 55 MB file: harmless even for an SD card), in exchange for (c)/(d)
 * corruption losing at most the last hour. Proposed config key: `snapshotMs` (0 = off).
 */
export const DEFAULT_SNAPSHOT_MS = 3_600_000;

export interface ModeInfo {
  mode: 'normal' | 'degraded';
  /** Epoch ms the current mode began (null: normal since start). */
  since: number | null;
  reason: string | null;
  /** Why degraded: the database is locked by someone else, or broken (corrupt, I/O, full, replaced). */
  kind: 'locked' | 'broken' | null;
}

export interface FallbackOptions {
  /** Journals, claim markers, salvage work: default `<database>.fallback` beside the database. */
  dir?: string;
  /** Probe period while degraded (default 1000 ms). */
  probeMs?: number;
  logger?: Logger;
  /** This process's worker id (default hostname:pid); names the journal. */
  workerId?: string;
  /** Clock for mode times and log lines (tests); store calls still take `now` from the caller. */
  clock?: () => number;
  /** Period of the "still degraded" error line (default 60 s). */
  degradedLogMs?: number;
  /** Check the file with quick_check at open (default true): a bad page is found before work starts. */
  checkAtOpen?: boolean;
  /** quick_check through a fresh connection this often in normal mode (default 60 s; 0: never). */
  healthCheckMs?: number;
  /** Snapshot period (default 1 h; 0: no snapshots). */
  snapshotMs?: number;
  /**
   * This host's path for a name the ledger stores (per-host `pathPrefixes`; default: the same).
   * The store sees the shared names; the one place it looks at the disk (re-discovery after
   * recovery) must look where this host has the file.
   */
  localPath?: (stored: string) => string;
}

export interface FallbackStoreOptions extends SqliteStoreOptions {
  fallback?: FallbackOptions;
}

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
 * This class is the mode switch, start-up, recovery and replay; the other concerns live beside
 * it: degraded.ts (degraded mode, which exists only while degraded), vetting.ts (pure
 * judgements of a degraded claim), normal-screen.ts (the normal-mode side of markers),
 * open-claims.ts, maintenance.ts (health check, snapshots), salvage-run.ts, state-files.ts,
 * and inspect.ts (the read-only view for the CLI).
 */
export class FallbackStore implements CheckpointStore {
  readonly kind: 'sqlite' | 'postgres';
  readonly dir: string;
  /** Where the work goes in normal mode, and what the fallback asks of it (primary.ts). */
  private readonly db: FallbackPrimary;
  /** The same primary when it is SQLite: quick_check, snapshots, salvage, the replaced-file check. */
  private readonly sq: SqlitePrimary | null;
  /** While a recovery (or the start) runs asynchronously (PostgreSQL): every call waits for it. */
  private gate: Promise<void> | null = null;
  /** Degraded-mode calls in progress: an asynchronous recovery waits until none is. */
  private degradedOps = 0;
  private idleWaiters: (() => void)[] = [];
  private startError: unknown = null;
  /** Degraded mode, while degraded (null: normal). */
  private degraded: DegradedMode | null = null;
  private modeInfo: ModeInfo = { mode: 'normal', since: null, reason: null, kind: null };
  /** The file's content is bad (CORRUPT/NOTADB), as opposed to locked, full, or replaced. */
  private corrupt = false;
  /** The episode met SQLITE_FULL: recovery waits for free space (see hasRoomFor). */
  private diskFull = false;
  private readonly open = new OpenClaims();
  private readonly markers: ClaimMarkers;
  private readonly locks: ClaimMarkers;
  private readonly journal: Journal;
  /** The salvage of a corrupt file and its lock. */
  private readonly salvager: SalvageRun;
  /** The normal-mode side of coexisting with degraded processes' markers. */
  private readonly screen: NormalScreen;
  private readonly log: Logger | undefined;
  private readonly workerId: string;
  private readonly self: ProcessIdentity;
  /** Tells this store's markers from those of another store in the same process. */
  private readonly instance = randomUUID();
  /** Who this store's claim markers and salvage locks say wrote them. */
  private readonly author: MarkerAuthor;
  private readonly probeMs: number;
  private readonly degradedLogMs: number;
  private readonly clock: () => number;
  private readonly retry: RetryPolicy;
  private probeTimer: NodeJS.Timeout | null = null;
  private logTimer: NodeJS.Timeout | null = null;
  /** Normal-mode upkeep on timers: health check, snapshot. */
  private readonly upkeep: Maintenance;
  private readonly localPath: (stored: string) => string;
  private recovering = false;
  private lastOrphanCheck = 0;
  private closed = false;
  private worker: WorkerInfo | null = null;
  /** Counters for `ckpt status`, tests and logs. */
  readonly counters = { degradedEpisodes: 0, replayed: emptyStats(), salvages: 0, deferredForMarkers: 0, protectedLeases: 0, fencedOutcomes: 0 };
  lastSalvage: SalvageReport | null = null;

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
    if (typeof target === 'string') {
      const file = path.resolve(target);
      this.dir = f.dir ?? `${file}.fallback`;
      this.sq = new SqlitePrimary(file, opts, `${file}.fallback`, (info) =>
        'error' in info
          ? this.log?.warn({ error: info.error }, 'could not copy the database for look-ups while it is locked')
          : this.log?.warn({ ms: info.ms, bytes: info.bytes }, 'the database cannot even be read (locking_mode=EXCLUSIVE elsewhere?): looking files up in a private copy'),
        this.dir,
      );
      this.db = this.sq;
    } else {
      this.db = target;
      this.sq = target instanceof SqlitePrimary ? target : null;
      this.dir = f.dir ?? target.defaultFallbackDir;
    }
    this.kind = this.db.kind;
    this.file = this.db.location;
    this.log = f.logger;
    this.workerId = f.workerId ?? `${os.hostname()}:${process.pid}`;
    this.localPath = f.localPath ?? ((p) => p);
    this.self = selfIdentity();
    this.probeMs = f.probeMs ?? DEFAULT_PROBE_MS;
    this.degradedLogMs = f.degradedLogMs ?? DEGRADED_LOG_MS;
    this.clock = f.clock ?? Date.now;
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.upkeep = new Maintenance({
      dir: this.dir, sq: this.sq, healthCheckMs: f.healthCheckMs ?? DEFAULT_HEALTH_CHECK_MS, snapshotMs: f.snapshotMs ?? DEFAULT_SNAPSHOT_MS,
      fileMode: opts.fileMode ?? 0o600, clock: this.clock, log: this.log,
      normal: () => this.state === 'normal', open: () => this.primary !== null, closed: () => this.closed, degrade: (err) => this.degrade(err),
    });
    this.markers = new ClaimMarkers(path.join(this.dir, 'claims'), opts.fileMode ?? 0o600);
    this.locks = new ClaimMarkers(path.join(this.dir, 'locks'), opts.fileMode ?? 0o600);
    this.journal = new Journal(this.dir, this.workerId, this.self, opts.fileMode ?? 0o600);
    this.author = { owner: this.self, instance: this.instance, workerId: this.workerId };
    this.salvager = new SalvageRun({
      file: this.file, dir: this.dir, locks: this.locks, author: this.author, snapshot: path.join(this.dir, SNAPSHOT_NAME), fileMode: opts.fileMode,
      clock: this.clock, log: this.log,
      replacedWhileOpen: () => this.primary !== null && this.fileReplaced(),
      closePrimary: () => this.closePrimary(),
      salvaged: (report) => {
        this.corrupt = false;
        this.counters.salvages++;
        this.lastSalvage = report;
      },
    });
    this.screen = new NormalScreen({
      db: this.db, markers: this.markers, probeMs: this.probeMs, clock: this.clock, log: this.log, counters: this.counters,
      reconcileOrphans: () => this.reconcileOrphans(),
    });
    const started = drive(this.startSteps(f.checkAtOpen ?? true));
    if (isPromise(started)) {
      this.gate = started.then(
        () => undefined,
        (err: unknown) => {
          this.startError = err;
        },
      );
      void this.gate.then(() => (this.gate = null));
    }
  }

  /**
   * A FallbackStore that has finished starting (PostgreSQL: connected and migrated, or
   * degraded because the server cannot be reached; journals left behind replayed). Errors that
   * are not unavailability (a wrong password, a schema from a newer ckpt) are thrown.
   */
  static async open(target: string | FallbackPrimary, opts: FallbackStoreOptions = {}): Promise<FallbackStore> {
    const s = new FallbackStore(target, opts);
    await s.gate;
    if (s.startError !== null) {
      await s.close().catch(() => undefined);
      throw s.startError;
    }
    return s;
  }

  private get state(): State {
    return this.degraded ? 'degraded' : 'normal';
  }

  private *startSteps(check: boolean): Generator<unknown, void, unknown> {
    yield* this.openAtStart(check);
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

  // ---- opening ---------------------------------------------------------------------------------

  private *openAtStart(check: boolean): Generator<unknown, void, unknown> {
    try {
      yield this.openPrimary();
      if (check && this.sq?.db) {
        const bad = checkIntegrity(this.sq.db);
        if (bad) throw bad;
      }
    } catch (err) {
      const e = toStoreError(err, `open ${this.file}`);
      if (!(e instanceof StoreUnavailableError)) throw e;
      // PostgreSQL refusing ckpt (wrong password, no such database, no privilege) needs a
      // person, not degraded mode: only an unreachable or restarting server is ridden out.
      if (this.kind === 'postgres' && e.kind === 'broken') throw e;
      // Leftovers of dead processes go whatever the database says (a SIGKILLed daemon's state
      // file would otherwise show in `ckpt status` until a start found the database healthy).
      this.cleanLeftovers();
      this.degrade(e);
      // A corrupt file is salvaged at once: nothing can be claimed until it is.
      yield drive(this.recoverSteps());
      return;
    }
    this.cleanLeftovers();
    // Journals left by processes that died (a crash while degraded) go in first.
    try {
      yield drive(this.reconcileSteps(true));
    } catch (err) {
      const e = toStoreError(err, 'replaying journals at open');
      if (!(e instanceof StoreUnavailableError)) throw e;
      // Locked right now: the first call will degrade, and recovery replays them later.
      this.log?.warn({ err: e.message }, 'journals left behind could not be replayed at open; will retry');
    }
  }

  /**
   * State files, look-up copies and salvage work folders of processes that are gone (journals
   * and markers are not touched here: they are replayed first, see replayAll).
   */
  private cleanLeftovers(): void {
    removeStaleStates(this.dir);
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      const full = path.join(this.dir, n);
      try {
        if (/^(lookup|salvage)-\d+/.test(n)) {
          const pid = Number(/^(?:lookup|salvage)-(\d+)/.exec(n)![1]);
          if (pid !== process.pid && !isAlive({ pid, host: this.self.host, startTicks: null })) fs.rmSync(full, { recursive: true, force: true });
        }
      } catch {
        // unreadable or being written: leave it
      }
    }
  }

  /** The normal-mode store, while open. */
  private get primary(): CheckpointStore | null {
    return this.db.store;
  }

  private openPrimary(): Maybe<void> {
    if (this.salvageLockStands()) {
      throw new StoreUnavailableError('broken', `another ckpt process is salvaging ${this.file}`, undefined);
    }
    return this.db.open();
  }

  /** SQLite only (a file replaced or salvaged underneath): closing is synchronous there. */
  private closePrimary(): void {
    void this.db.close();
  }

  // ---- mode switching --------------------------------------------------------------------------

  private degrade(err: StoreUnavailableError): void {
    if (isCorruption(err)) this.corrupt = true;
    if (err.code?.startsWith('SQLITE_FULL')) this.diskFull = true;
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
    this.startTimers();
    // A broken file: try to salvage right away rather than after the first probe period.
    if (err.kind === 'broken' && !this.closed) setImmediate(() => void this.probe());
  }

  private startTimers(): void {
    if (!this.probeTimer) {
      this.probeTimer = setInterval(() => void this.probe(), this.probeMs);
      this.probeTimer.unref();
    }
    if (!this.logTimer) {
      this.logTimer = setInterval(() => {
        if (this.state !== 'degraded') return;
        this.log?.error(
          { since: iso(this.modeInfo.since ?? 0), reason: this.modeInfo.reason, kind: this.modeInfo.kind, openClaims: this.open.size, journal: this.journal.file },
          'still degraded: the database is unavailable; outcomes are kept in the journal',
        );
      }, this.degradedLogMs);
      this.logTimer.unref();
    }
  }

  private stopTimers(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.logTimer) clearInterval(this.logTimer);
    this.probeTimer = null;
    this.logTimer = null;
  }

  /** One recovery attempt (timer tick). Never throws. */
  private async probe(): Promise<void> {
    if (this.state !== 'degraded' || this.recovering || this.closed) return;
    if (this.kind === 'postgres' && this.primary) {
      // Ask before closing the gate: against a server behind a network partition one probe waits
      // its whole connect timeout (2 s), and the calls it held would stall for that long each time.
      this.recovering = true;
      let down: boolean;
      try {
        down = (await this.db.probe()) !== null;
      } catch {
        down = true;
      } finally {
        this.recovering = false;
      }
      if (down || this.state !== 'degraded' || this.closed) return;
    }
    await this.recoverNow();
  }

  /**
   * One recovery attempt. With SQLite it is synchronous: the whole switch back happens in one
   * turn of the event loop, so no call interleaves. With PostgreSQL it takes round trips: the
   * gate holds every new call until it is over, and it starts only once no degraded call is
   * in progress.
   */
  private recoverNow(): Maybe<boolean> {
    if (this.state !== 'degraded' || this.recovering || this.closed) return false;
    const r = drive(this.recoverSteps());
    if (!isPromise(r)) return r;
    const gate = r.then(() => undefined);
    this.gate = gate;
    void gate.then(() => {
      if (this.gate === gate) this.gate = null;
    });
    return r;
  }

  /** Resolves once no degraded-mode call is in progress. */
  private degradedIdle(): Promise<void> {
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private *recoverSteps(): Generator<unknown, boolean, unknown> {
    if (this.state !== 'degraded' || this.recovering || this.closed) return false;
    this.recovering = true;
    const now = this.clock();
    try {
      if (this.degradedOps > 0) yield this.degradedIdle();
      if (this.salvageLockStands()) return false;
      if (this.diskFull && this.kind === 'sqlite' && !hasRoomFor(this.file, ROOM_AFTER_FULL)) return false;
      if (this.primary && this.fileReplaced()) this.closePrimary();
      if (this.primary && this.corrupt) {
        if (!this.salvage(now)) return false;
      }
      if (!this.primary) {
        try {
          yield this.openPrimary();
        } catch (err) {
          const e = toStoreError(err, `open ${this.file}`);
          if (!(e instanceof StoreUnavailableError)) throw e;
          if (!isCorruption(e)) return false;
          this.corrupt = true;
          if (!this.salvage(now)) return false;
          yield this.openPrimary();
        }
        const bad = this.sq?.db ? checkIntegrity(this.sq.db) : null;
        if (bad) {
          if (bad.kind === 'broken') this.corrupt = true;
          this.degrade(bad);
          return false;
        }
      }
      const blocked = (yield this.db.probe()) as StoreUnavailableError | null;
      if (blocked) {
        if (isCorruption(blocked)) this.corrupt = true;
        return false;
      }
      this.corrupt = false;
      const stats = (yield drive(this.replaySteps(now, true))) as ReplayStats;
      this.diskFull = false;
      this.backToNormal(now, stats);
      return true;
    } catch (err) {
      const e = toStoreError(err, 'recovery');
      if (e instanceof StoreUnavailableError) {
        if (isCorruption(e)) this.corrupt = true;
      } else {
        this.log?.error({ err }, 'recovery from degraded mode failed; will retry');
      }
      return false;
    } finally {
      this.recovering = false;
    }
  }

  private backToNormal(now: number, stats: ReplayStats): void {
    const mem = this.degraded?.memory;
    const since = this.modeInfo.since ?? now;
    this.degraded?.end();
    this.degraded = null;
    this.modeInfo = { mode: 'normal', since: now, reason: null, kind: null };
    for (const o of this.open.values()) o.marker = null;
    this.stopTimers();
    this.db.endEpisode();
    this.db.setDegradedReads(false);
    this.writeState();
    this.log?.info(
      { degradedForMs: now - since, replayed: stats.applied, skipped: stats.skipped, conflicts: stats.conflicts, inserted: stats.inserted, openClaims: this.open.size },
      'database available again: journal replayed, back to normal mode',
    );
    // Files discovered while degraded and not handled yet: the database must learn them. The
    // watcher will not hand them again (it remembers what it handed), so retry until it takes
    // them (a disk that was full may refuse the first writes after space returns). Only files
    // still on disk as they were seen: one moved away or rewritten meanwhile (by a worker that
    // handled its newer content while this process was stopped) would come back as a stale new
    // version and go dead as "vanished" (the soak, seed 554751315); new content is the
    // watcher's to report once it is whole.
    if (mem && this.primary) {
      const files: DiscoveredFile[] = mem
        .records()
        .filter((r) => (r.status === 'pending' || r.status === 'failed') && unchangedOnDisk(this.localPath(r.fileUrl), r.fingerprint))
        .map((r) => ({ fileUrl: r.fileUrl, fileType: r.fileType, mtimeMs: Date.parse(r.fileTimestamp), size: r.fileSize, fingerprint: r.fingerprint }));
      if (files.length > 0) this.rediscover(files, 0);
    }
    if (this.worker) void this.touchWorker({ ...this.worker, mode: 'normal', modeSince: now, modeReason: null }, now).catch(() => {});
  }

  /** The stored name's file on this host still has this fingerprint (one lstat). */
  private onDiskAsSeen(stored: string, fingerprint: string): boolean {
    return unchangedOnDisk(this.localPath(stored), fingerprint);
  }

  /** Hand files seen while degraded to the database, retrying every second for up to 10 minutes. */
  private rediscover(files: DiscoveredFile[], attempt: number): void {
    if (this.closed) return;
    this.discover(files, Date.now()).catch((err: unknown) => {
      if (attempt % 10 === 0) this.log?.warn({ err, files: files.length, attempt }, 'could not re-discover files seen while degraded; retrying');
      if (attempt < 600) setTimeout(() => this.rediscover(files, attempt + 1), 1_000).unref();
    });
  }

  /**
   * Replay journals (this process's and those of dead processes), apply terminal markers of
   * dead processes, and (at recovery) write this process's open claims into the database, in
   * one IMMEDIATE transaction with busy timeout 0. Then remove what was replayed.
   */
  private *replaySteps(now: number, carry: boolean): Generator<unknown, ReplayStats, unknown> {
    const mine: ReadJournal | null = carry && fs.existsSync(this.journal.file) ? readJournal(this.journal.file) : null;
    // One verdict per owner for the whole pass, markers' owners first: a marker removed below
    // belongs to an owner that was gone before its journal was read, so that journal is whole.
    const alive = livenessOnce();
    const markers = this.markers.all().filter((m) => m.instance === this.instance || !alive(m.owner));
    const orphans = orphanJournals(this.dir, this.journal.file, this.self.host, alive);
    const entries: JournalEntry[] = [];
    for (const j of orphans) entries.push(...j.entries);
    if (mine) entries.push(...mine.entries);
    // A terminal marker carries its outcome too: it covers a crash between the marker and
    // the journal line (replaying both is harmless: the token makes the second a no-op).
    for (const m of markers) if (m.entry) entries.push(m.entry);
    const carried = carry ? [...this.open.values()] : [];
    const { stats: s, lostTokens } = (yield this.db.replay(entries, carried.map((o) => carriedClaim(o)), now, (err, e) =>
      this.log?.error({ err, path: e.fileUrl, entry: e.t }, 'a journal entry could not be replayed; skipped'),
    )) as { stats: ReplayStats; lostTokens: Set<string> };
    const lost = carried.filter((o) => lostTokens.has(o.claim.token));
    // Committed: the journals are redundant now. Journal first, then markers, so a marker never
    // disappears while its outcome exists only in a journal.
    for (const j of orphans) removeJournal(j.file);
    if (mine) this.journal.remove();
    for (const m of markers) this.markers.remove(m.fileUrl, m.gen);
    for (const o of lost) {
      this.open.delete(o.claim.fileUrl);
      this.log?.warn({ path: o.claim.fileUrl, attempt: o.claim.attempt, workerId: this.workerId }, 'claim held while degraded was finished elsewhere meanwhile; it is lost');
    }
    const c = this.counters.replayed;
    c.applied += s.applied;
    c.skipped += s.skipped;
    c.conflicts += s.conflicts;
    c.inserted += s.inserted;
    c.renumbered += s.renumbered;
    if (orphans.length > 0) {
      this.log?.warn({ journals: orphans.map((j) => path.basename(j.file)), replayed: s.applied, conflicts: s.conflicts }, 'replayed journals left by ckpt processes that are gone');
    }
    if (s.conflicts > 0) {
      this.log?.error(
        { conflicts: s.conflicts },
        'some journal outcomes met a different outcome or a newer claim in the database (a file completed twice, or a failure after a newer claim); the database kept its own, see outcome "conflict" in their attempts',
      );
    }
    return s;
  }

  /** In normal mode: replay what dead processes left behind (rate-limited unless forced). */
  private *reconcileSteps(force = false): Generator<unknown, void, unknown> {
    const now = this.clock();
    if (!force && now - this.lastOrphanCheck < this.probeMs) return;
    this.lastOrphanCheck = now;
    if (!this.primary || this.state !== 'normal') return;
    const anyJournal = listJournals(this.dir).some((f) => f !== this.journal.file);
    if (!anyJournal && !this.markers.anyExist()) return;
    yield drive(this.replaySteps(now, false));
  }

  private async reconcileOrphans(): Promise<void> {
    await drive(this.reconcileSteps());
  }

  // ---- salvage -----------------------------------------------------------------------------------

  private salvageLockStands(): boolean {
    return this.salvager.lockStands();
  }

  /** Move the corrupt file aside and build a fresh one (salvage-run.ts). True when done. */
  private salvage(now: number): boolean {
    return this.salvager.run(now);
  }

  private fileReplaced(): boolean {
    return this.sq?.replaced() ?? false;
  }

  // ---- normal-mode plumbing -----------------------------------------------------------------------

  /**
   * Run `fn` on the database in normal mode; on StoreUnavailableError switch to degraded mode
   * and answer from `degraded` instead. Other errors (bugs, constraints) pass through.
   */
  private async route<T>(fn: (p: CheckpointStore) => Promise<T>, degraded: (d: DegradedMode) => Promise<T> | T): Promise<T> {
    for (;;) {
      // A recovery in progress (PostgreSQL only; SQLite recovers within one turn): wait for it.
      if (this.gate) await this.gate;
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
      if (this.gate) continue;
      const d = this.degraded;
      // Normal without a database cannot happen (a failed open degrades); say so if it does.
      if (!d) throw new Error(`store is neither open nor degraded (${this.file})`);
      this.degradedOps++;
      try {
        return await degraded(d);
      } finally {
        if (--this.degradedOps === 0) for (const w of this.idleWaiters.splice(0)) w();
      }
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
    if (this.fileReplaced() || this.salvageLockStands()) {
      this.degrade(new StoreUnavailableError('broken', `database file ${this.file} was replaced or is being salvaged by another process`, undefined));
    }
  }

  private track(c: Claim, workerId: string, now: number, extra?: { fileTimestamp: string; fileSize: number }): void {
    const o: OpenClaim = {
      claim: c,
      fromDatabase: true,
      workerId,
      startedAt: now,
      handlerPid: null,
      marker: null,
      fileTimestamp: extra?.fileTimestamp ?? iso(now),
      fileSize: extra?.fileSize ?? 0,
    };
    this.open.set(c.fileUrl, o);
    // A claim that the database granted after another call had already switched us to degraded mode.
    if (this.degraded && !this.degraded.memory.peekHeld(c)) this.degraded.adopt(o, now);
  }

  /**
   * What the database says about a file, or null when nobody can tell. A corrupt or replaced
   * file is not asked at all: a damaged index could answer "no such row" for a completed file.
   */
  private looked(fileUrl: string, now: number): Maybe<Looked | null> {
    if (!this.mayAskDatabase()) return null;
    return this.db.lookup(fileUrl, now);
  }

  /** The database may be read while degraded: not corrupt, not replaced, not broken and closed. */
  private mayAskDatabase(): boolean {
    return !(this.corrupt || this.fileReplaced() || (this.modeInfo.kind === 'broken' && !this.primary));
  }

  private degradedDeps(): DegradedDeps {
    return {
      kind: this.kind, author: this.author, workerId: this.workerId, db: this.db, markers: this.markers, journal: this.journal,
      open: this.open, opts: this.opts, retry: this.retry, probeMs: this.probeMs, clock: this.clock, log: this.log, counters: this.counters,
      looked: (fileUrl, now) => this.looked(fileUrl, now),
      mayAskDatabase: () => this.mayAskDatabase(),
      onDiskAsSeen: (stored, fingerprint) => this.onDiskAsSeen(stored, fingerprint),
    };
  }

  /** This process's mode for `ckpt status` and `ckpt doctor` (state-files.ts). */
  private writeState(): void {
    try {
      const body: FallbackState = {
        workerId: this.workerId,
        owner: this.self,
        ...this.modeInfo,
        openClaims: this.open.size,
        journal: path.basename(this.journal.file),
        updatedAt: this.clock(),
      };
      writeStateFile(this.stateFile(), body, this.opts.fileMode ?? 0o600);
    } catch (err) {
      this.log?.warn({ err }, 'could not write the fallback state file');
    }
  }

  private stateFile(): string {
    return stateFileOf(this.dir, this.workerId);
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

  async claim(n: number, opts: ClaimOptions): Promise<Claim[]> {
    const claims = await this.route(
      async (p) => {
        const marked = await this.screen.protect(opts);
        const got = await p.claim(n, opts);
        const keep = await this.screen.screen(got, opts, marked);
        for (const c of keep) this.track(c, opts.workerId, opts.now);
        return keep;
      },
      (d) => d.claim(n, opts),
    );
    return claims;
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
        const lostSet = new Set(lost.map((l) => `${l.fileUrl}\0${l.token}`));
        for (const r of refs) {
          const o = this.open.of(r);
          if (!o) continue;
          if (lostSet.has(`${r.fileUrl}\0${r.token}`)) this.open.delete(r.fileUrl);
          else o.claim = { ...o.claim, leaseExpiresAt: now + leaseMs };
        }
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
    return this.route(
      (p) => p.requeue(q),
      () => {
        throw this.unavailable('requeue');
      },
    );
  }

  purge(q: PurgeQuery): Promise<number> {
    return this.route(
      (p) => p.purge(q),
      () => {
        throw this.unavailable('purge');
      },
    );
  }

  expireTombstones(q: TombstoneExpiryQuery): Promise<number> {
    return this.route(
      (p) => p.expireTombstones(q),
      () => {
        throw this.unavailable('expiring tombstones');
      },
    );
  }

  tombstone(fileUrl: string): Promise<Tombstone | null> {
    return this.route(
      (p) => p.tombstone(fileUrl),
      async () => (await this.readPrimaryOr((p) => p.tombstone(fileUrl))) ?? null,
    );
  }

  revive(file: DiscoveredFile, q: { now: number; by?: string }): Promise<Tombstone | null> {
    return this.route(
      (p) => p.revive(file, q),
      () => {
        throw this.unavailable('lifting a tombstone');
      },
    );
  }

  /** Only in normal mode: the history row it changes is in the database, not in the journal. */
  recordAfterAction(item: AfterActionDone): Promise<void> {
    return this.route(
      (p) => p.recordAfterAction(item),
      () => undefined,
    );
  }

  private unavailable(what: string): StoreUnavailableError {
    return new StoreUnavailableError(
      this.modeInfo.kind ?? 'locked',
      `${what} needs the database, which is unavailable (degraded since ${iso(this.modeInfo.since ?? 0)}: ${this.modeInfo.reason ?? '?'}); try again when it is back`,
      undefined,
    );
  }

  get(fileUrl: string): Promise<FileRecord | null> {
    return this.route(
      (p) => p.get(fileUrl),
      async (d) => {
        const m = d.memory.peek(fileUrl);
        if (m) return m;
        return (await this.looked(fileUrl, this.clock()))?.row ?? null;
      },
    );
  }

  list(q: ListQuery): Promise<FileRecord[]> {
    return this.route(
      (p) => p.list(q),
      async (d) => (await this.readPrimaryOr((p) => p.list(q))) ?? d.memory.list(q),
    );
  }

  attempts(fileUrl: string): Promise<AttemptRecord[]> {
    return this.route(
      (p) => p.attempts(fileUrl),
      async (d) => [...((await this.readPrimaryOr((p) => p.attempts(fileUrl))) ?? []), ...(await d.memory.attempts(fileUrl))],
    );
  }

  counts(): Promise<Record<Status, number>> {
    return this.route(
      (p) => p.counts(),
      async (d) => (await this.readPrimaryOr((p) => p.counts())) ?? d.memory.counts(),
    );
  }

  stats(now: number): Promise<StoreStats> {
    return this.route(
      (p) => p.stats(now),
      async (d) => (await this.readPrimaryOr((p) => p.stats(now))) ?? d.memory.stats(now),
    );
  }

  activity(q: ActivityQuery): Promise<Activity> {
    return this.route(
      (p) => p.activity(q),
      async (d) => {
        const a = (await this.readPrimaryOr((p) => p.activity(q))) ?? (await d.memory.activity(q));
        // While degraded this process's own worker row is in memory: workers() merges it in.
        return { ...a, workers: await this.workers() };
      },
    );
  }

  /** A read against the database while degraded (works under a write lock), or null. */
  private async readPrimaryOr<T>(fn: (p: CheckpointStore) => Promise<T>): Promise<T | null> {
    if (!this.primary || this.corrupt) return null;
    return this.db.readWhileDegraded(fn);
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
    return this.route(
      (p) => p.workers(),
      async (d) => {
        const fromDb = (await this.readPrimaryOr((p) => p.workers())) ?? [];
        const mine = await d.memory.workers();
        const ids = new Set(mine.map((w) => w.workerId));
        return [...fromDb.filter((w) => !ids.has(w.workerId)), ...mine].sort((a, b) => (a.workerId < b.workerId ? -1 : 1));
      },
    );
  }

  /** For tests and `ckpt doctor`: try to recover now instead of waiting for the probe. */
  async tryRecover(): Promise<boolean> {
    if (this.gate) await this.gate;
    return this.recoverNow();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Degraded at shutdown: one last try to get the outcomes into the database.
    if (this.gate) await this.gate;
    if (this.state === 'degraded') await this.recoverNow();
    this.closed = true;
    this.stopTimers();
    await this.upkeep.stop();
    this.journal.close();
    this.db.endEpisode();
    try {
      fs.rmSync(this.stateFile(), { force: true });
    } catch {
      // ignore
    }
    await this.db.close();
  }
}

/** The file is where it was seen, with the same identity (one lstat). */
function unchangedOnDisk(fileUrl: string, fingerprint: string): boolean {
  try {
    return fingerprintOf(fs.lstatSync(fileUrl)) === fingerprint;
  } catch {
    return false;
  }
}
