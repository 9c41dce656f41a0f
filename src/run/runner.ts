/**
 * The claim loop: keeps up to `concurrency` handlers running, claiming in batches as slots
 * free up, renews the leases of what it holds, and records every outcome with the claim token.
 *
 *   wake() / poll timer -> fill() -> store.claim(free slots + claim-ahead) -> queue -> runOne() per free slot
 *   runOne: check the file -> handler -> complete | fail (token) -> after-action (only if 'ok')
 *   lease timer: store.heartbeat(running + queued) -> lost claims are aborted (running) or
 *   dropped (queued) and never recorded; stop() gives queued claims back at once
 *
 * Claim-ahead (claimAhead()): only while handler runs average under 50 ms. The file checks run
 * in line for local folders and through the thread pool for polled ones (file-checks.ts).
 *
 * Nothing here throws out of the loop: a bad file, a handler crash or a store error is logged
 * with the file's path, attempt and worker id, and the loop goes on.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { pollDecision } from '../mounts.js';
import { beforeBoot } from '../store/fallback/process-identity.js';
import type { CheckpointStore, Claim, ClaimRef, DiscoveredFile, ExpiredClaim, UnfinishedAfterAction } from '../store/types.js';
import { type AfterAction, type FileIdentity, afterActionLabel, applyAfterAction, removeIfSame } from './after-action.js';
import { GONE, logAfterActionError, wentAsPlanned } from './after-action-log.js';
import { CompletionBatcher } from './completion-batcher.js';
import { type ChangedFile, type CheckResult, changedAsync, changedInLine, checkFileAsync, checkFileInLine } from './file-checks.js';
import type { Handler, HandlerOutcome } from './handler.js';
import { killOrphanedHandler } from './orphans.js';
import { pidExists } from '../pid-exists.js';

/** What the runner reports to metrics; every method optional so tests can pass nothing. */
export interface RunnerMetrics {
  claimed?(n: number): void;
  completed?(durationMs: number): void;
  failed?(kind: string, durationMs?: number): void;
  leaseTakeovers?(n: number): void;
  discoveryToClaim?(ms: number): void;
}

export type OutcomeKind = 'completed' | 'failed' | 'dead' | 'lost' | 'released';

export interface RunnerFolder {
  dir: string;
  readyMarker: string | null;
  /**
   * The watch config's `poll` (default 'auto': poll on a network file system, as the watcher
   * decides). Files in a polled folder are checked through the thread pool, the others in line
   * (see file-checks.ts).
   */
  poll?: boolean | 'auto';
}

export interface RunnerOptions {
  store: CheckpointStore;
  handler: Handler;
  workerId: string;
  /** This machine's name: expired claims of workers named `${host}:pid` get their orphans killed. */
  host: string;
  concurrency: number;
  leaseMs: number;
  folders: readonly RunnerFolder[];
  onSuccess: AfterAction;
  onDead: AfterAction;
  logger: Logger;
  metrics?: RunnerMetrics;
  /** Called after every settled file (for --once and progress). */
  onOutcome?: (fileUrl: string, outcome: OutcomeKind) => void;
  /** A file changed while it was handled: hand its new version to discovery. */
  rediscover?: (file: DiscoveredFile) => Promise<void>;
  /** How often to look for claimable files when nothing woke us (failed files coming due, other processes' discoveries). */
  pollMs?: number;
  now?: () => number;
  /** When the discovery of a file was seen locally, for the discovery-to-claim latency metric. */
  discoveredAt?: (fileUrl: string) => number | undefined;
  /** Decides `poll: 'auto'` (default isNetworkFileSystem from src/mounts.ts, like the watcher). */
  isNetworkFs?: (dir: string) => boolean;
  /**
   * True while nothing should be claimed (the handler's program is gone, see
   * handler-availability.ts): files claimed ahead are given back; call wake() when it turns false.
   */
  paused?: () => boolean;
}

/**
 * What a reload may swap (src/daemon/reload.ts). The pool size and lease apply at once; the
 * handler, after-actions and folders are captured with each claim, so a file claimed before a
 * reload runs and settles entirely under the settings it was claimed with.
 */
export type RunnerSettings = Pick<RunnerOptions, 'handler' | 'concurrency' | 'leaseMs' | 'folders' | 'onSuccess' | 'onDead'>;

/** The part of the settings a claim keeps for its whole run. */
type ClaimSettings = Pick<RunnerOptions, 'handler' | 'folders' | 'onSuccess' | 'onDead'>;

interface Running {
  claim: Claim;
  settings: ClaimSettings;
  ac: AbortController;
  /** Why we aborted: the lease was lost (do not record anything) or the daemon stops (release). */
  abortedFor: 'lease' | 'shutdown' | null;
  /** The outcome is committed: the claim is over, only the after-action is left (no renewals). */
  settled: boolean;
  /** Device and inode of the file the handler read: after-actions touch only that file. */
  identity?: FileIdentity;
  /** The watched folder the file is in (looked up once: path.relative per folder is not free). */
  folder: RunnerFolder | undefined;
  /** Epoch ms (the runner's clock) when the lease runs out unless renewed. */
  leaseEndsAt: number;
  done: Promise<void>;
}

/** A file claimed ahead of a free slot (fast handlers only), waiting in the local queue. */
interface Queued {
  claim: Claim;
  settings: ClaimSettings;
  /** Epoch ms (the runner's clock) when the lease runs out unless renewed. */
  leaseEndsAt: number;
}

/**
 * Claim-ahead: when recent handler runs are short, claim up to this many files more than the
 * free slots and keep them in a local queue. At concurrency 4 a claim carried 1.85 files on
 * average (5,402 claim transactions for 10,000 files) and the pipeline ran at 611 files/s
 * against 1,720 at concurrency 64, where a claim carries up to 64 (scripts/bench/findings.md).
 */
const MAX_CLAIM_AHEAD = 64;
/**
 * "Short": an average run under 50 ms. A queue of 64 such files is at most 3.2 s of work for
 * one slot; slower handlers claim only free slots, so they never hoard files that another
 * process could be running (goal 2: neither of two processes under a third of the work).
 */
const FAST_RUN_MS = 50;
/** Weight of the newest run in the moving average: about the last 10 runs count. */
const RUN_MS_ALPHA = 0.2;

/** Idle poll: a claim on an empty queue costs about 20 us; 4 polls a second per process is noise. */
const DEFAULT_POLL_MS = 250;

/**
 * A renewal that failed (the database busy past lockTimeoutMs) is tried again this soon, not a
 * whole lease/3 later: at the normal pace two more failures would let the lease run out.
 */
const RENEW_RETRY_MS = 500;

export class Runner {
  private readonly o: Required<Pick<RunnerOptions, 'pollMs' | 'now'>> & RunnerOptions;
  private readonly running = new Map<string, Running>();
  /** Claimed ahead, not started yet (oldest first); their leases are renewed with the running ones. */
  private queued: Queued[] = [];
  /** Moving average of handler runs (ms, from the checks to the handler's return); null before the first. */
  private runMsAvg: number | null = null;
  /** Per folder: check its files in line (local) or through the thread pool (polled)? */
  private readonly inLine = new WeakMap<RunnerFolder, boolean>();
  private readonly batcher: CompletionBatcher;
  private filling: Promise<void> | null = null;
  /** A fill is due on the next turn of the event loop (see wake()). */
  private fillScheduled = false;
  private fillAgain = false;
  private stopping = false;
  private started = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  /** performance.now() when the pending renewal timer should fire (its lateness is logged). */
  private renewDueAt = 0;
  private renewalsStopped = false;
  /**
   * The lease length the held claims were last given: differs from o.leaseMs between a reload
   * that changed it and the next renewal, so that lateness is judged by the lease they hold.
   */
  private heldLeaseMs: number;
  /** True when the last claim found nothing: with nothing running, this process is idle. */
  private drained = false;
  private storeErrorLogged = 0;
  private readonly expiredDead: ExpiredClaim[] = [];

  constructor(opts: RunnerOptions) {
    this.o = { pollMs: DEFAULT_POLL_MS, now: Date.now, ...opts };
    this.heldLeaseMs = opts.leaseMs;
    this.batcher = new CompletionBatcher(opts.store);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.pollTimer = setInterval(() => this.wake(), this.o.pollMs);
    this.scheduleRenewal(this.renewEveryMs());
    this.wake();
  }

  /**
   * Something may be claimable (discovery inserted rows, a slot freed up). The claim runs on
   * the next turn of the event loop, not at once: the completion batcher settles a whole batch
   * of files in one turn, and each of them frees a slot and calls wake(). Claiming at the first
   * call took ONE slot per claim transaction: 10,001 claims for 10,000 files at concurrency 64
   * (measured, scripts/bench/pipeline.ts); waiting for the turn to end claims every freed slot
   * in one transaction.
   */
  wake(): void {
    if (!this.started || this.stopping) return;
    if (this.filling) {
      this.fillAgain = true;
      return;
    }
    if (this.fillScheduled) return;
    this.fillScheduled = true;
    setImmediate(() => {
      this.fillScheduled = false;
      if (!this.started || this.stopping) return;
      if (this.filling) {
        this.fillAgain = true;
        return;
      }
      this.filling = this.fill().finally(() => {
        this.filling = null;
      });
    });
  }

  get inFlight(): number {
    return this.running.size;
  }

  /** Files claimed ahead and waiting for a free slot. */
  get queuedCount(): number {
    return this.queued.length;
  }

  /** Nothing running or queued and the last claim found nothing claimable. */
  get idle(): boolean {
    return this.running.size === 0 && this.queued.length === 0 && this.drained && this.filling === null && !this.fillScheduled;
  }

  /**
   * How many files to hold beyond the free slots: none until a handler run has been timed or
   * while runs average FAST_RUN_MS or more. Also bounded so that the last queued file starts
   * within a third of the lease (about queued * average / concurrency ms from now), i.e. before
   * its lease could run out even if two renewals in a row failed; with the default 30 s lease
   * that bound is 64 from a 1 s lease upward (concurrency 4, runs under 50 ms).
   */
  private claimAhead(): number {
    const avg = this.runMsAvg;
    if (avg === null || avg >= FAST_RUN_MS) return 0;
    const byLease = Math.floor(((this.o.leaseMs / 3) * this.o.concurrency) / Math.max(1, avg));
    return Math.min(MAX_CLAIM_AHEAD, byLease);
  }

  private noteRunMs(ms: number): void {
    this.runMsAvg = this.runMsAvg === null ? ms : this.runMsAvg + RUN_MS_ALPHA * (ms - this.runMsAvg);
  }

  /** Start queued claims in the free slots, oldest first. */
  private launchQueued(): void {
    while (this.queued.length > 0 && this.running.size < this.o.concurrency && !this.stopping) {
      const q = this.queued.shift()!;
      this.launch(q.claim, q.leaseEndsAt, q.settings);
    }
  }

  private async fill(): Promise<void> {
    do {
        this.fillAgain = false;
        if (this.stopping) break;
        if (this.o.paused?.()) {
          await this.releaseQueued('handler unavailable');
          break;
        }
        this.launchQueued();
        const free = this.o.concurrency - this.running.size;
        const ahead = this.claimAhead();
        // Refill the queue when it is down to half (a claim then carries at least half of it),
        // not after every file it hands out: that would be one small claim per freed slot again.
        if (free <= 0 && this.queued.length > ahead / 2) break;
        const want = free + ahead - this.queued.length;
        if (want <= 0) break;
        const now = this.o.now();
        const { handler, folders, onSuccess, onDead } = this.o;
        const settings: ClaimSettings = { handler, folders, onSuccess, onDead };
        let claims: Claim[];
        try {
          claims = await this.o.store.claim(want, {
            workerId: this.o.workerId,
            leaseMs: this.o.leaseMs,
            now,
            onExpired: (expired) => this.takeOver(expired),
            deadAfterAction: afterActionLabel(settings.onDead),
          });
          this.storeErrorLogged = 0;
        } catch (err) {
          this.logStoreError(err, 'claim');
          break;
        } finally {
          this.afterExpiredDead();
        }
        this.drained = claims.length === 0;
        if (claims.length === 0) break;
        if (this.stopping) {
          // stop() began while the claim waited for the lock: give these straight back.
          await this.o.store.release(claims, this.o.now()).catch((err: unknown) => this.logStoreError(err, 'release'));
          break;
        }
        this.o.metrics?.claimed?.(claims.length);
        for (const c of claims) {
          const seen = this.o.discoveredAt?.(c.fileUrl);
          if (seen !== undefined) this.o.metrics?.discoveryToClaim?.(Math.max(0, now - seen));
          this.queued.push({ claim: c, settings, leaseEndsAt: c.leaseExpiresAt });
        }
        this.launchQueued();
        // A full batch means there may be more: go round again (it stops when slots and queue are full).
        if (claims.length === want) this.fillAgain = true;
    } while (this.fillAgain && !this.stopping);
  }

  /**
   * Inside the claim transaction: claims whose lease ran out. A command handler of a dead
   * worker on this host may still run in its own process group; it must be gone before anyone
   * runs the file again. (Workers on other hosts cannot be checked: the lease and the token
   * are the protection there.)
   */
  private takeOver(expired: readonly ExpiredClaim[]): void {
    this.o.metrics?.leaseTakeovers?.(expired.length);
    for (const e of expired) {
      if (e.status === 'dead') this.expiredDead.push(e);
      const local = e.workerId !== null && e.workerId.startsWith(`${this.o.host}:`);
      let killed = 0;
      if (local) {
        try {
          killed = killOrphanedHandler(e.handlerPid, e.token).killed;
        } catch (err) {
          this.o.logger.error({ path: e.fileUrl, attempt: e.attempt, workerId: this.o.workerId, err }, 'could not check for an orphaned handler');
        }
      }
      this.o.logger.warn(
        { path: e.fileUrl, attempt: e.attempt, workerId: this.o.workerId, previousWorker: e.workerId, orphansKilled: killed, status: e.status },
        'took over an expired claim',
      );
    }
  }

  private launch(claim: Claim, leaseEndsAt: number, settings: ClaimSettings): void {
    const folder = this.folderOf(claim.fileUrl, settings.folders);
    const entry: Running = { claim, settings, ac: new AbortController(), abortedFor: null, settled: false, leaseEndsAt, folder, done: Promise.resolve() };
    this.running.set(claim.fileUrl, entry);
    entry.done = this.runOne(entry)
      .catch((err: unknown) => {
        this.log(claim).error({ err }, 'unexpected error while handling a file');
      })
      .finally(() => {
        this.running.delete(claim.fileUrl);
        this.wake();
      });
  }

  /**
   * Files that went dead in a lease sweep (their worker died on the last attempt) get onDead
   * like any other dead file; the sweep committed first, so this runs after the outcome.
   */
  private afterExpiredDead(): void {
    for (const e of this.expiredDead.splice(0)) {
      const folder = this.folderOf(e.fileUrl);
      if (!folder) continue;
      const log = this.o.logger.child({ path: e.fileUrl, attempt: e.attempt, workerId: this.o.workerId });
      applyAfterAction(this.o.onDead, e.fileUrl, { root: folder.dir, readyMarker: folder.readyMarker })
        .then(
          (done) => {
            log.error({ outcome: 'dead', afterAction: done }, 'dead: its worker died on the last attempt');
            return done;
          },
          (err: unknown) => {
            logAfterActionError(log, err);
            return `failed: ${(err as Error).message}`;
          },
        )
        .then((done) => this.o.store.recordAfterAction({ fileUrl: e.fileUrl, token: e.token, done }))
        .catch((err: unknown) => log.warn({ error: (err as Error).message }, 'could not record where the after-action left the file'));
    }
  }

  private log(c: Claim): Logger {
    return this.o.logger.child({ path: c.fileUrl, attempt: c.attempt, workerId: this.o.workerId });
  }

  private async runOne(entry: Running): Promise<void> {
    const { claim } = entry;
    const log = this.log(claim);
    const ref: ClaimRef = { fileUrl: claim.fileUrl, token: claim.token };
    const started = this.o.now();

    const folder = entry.folder;
    const inLine = this.checksInLine(folder);
    const checked: CheckResult = inLine ? checkFileInLine(claim.fileUrl, folder?.dir) : await checkFileAsync(claim.fileUrl, folder?.dir);
    if (!('error' in checked)) entry.identity = checked.identity;
    if ('error' in checked) {
      await this.recordFailure(entry, log, {
        ok: false,
        permanent: checked.permanent,
        kind: checked.reason,
        error: checked.error,
        durationMs: this.o.now() - started,
      });
      return;
    }

    const outcome = await entry.settings.handler({
      fileUrl: claim.fileUrl,
      fileType: claim.fileType,
      version: claim.version,
      attempt: claim.attempt,
      workerId: this.o.workerId,
      idempotencyKey: claim.idempotencyKey,
      claimToken: claim.token,
      signal: entry.ac.signal,
      logger: log,
      // The lease as it stands now, on the wall clock the launcher reads (o.now may be a test clock).
      startBy: Date.now() + (entry.leaseEndsAt - this.o.now()),
      onSpawn: (pid) => {
        this.o.store.setHandlerPid(ref, pid).catch((err: unknown) => log.warn({ err }, 'could not record the handler pid'));
      },
    });
    this.noteRunMs(this.o.now() - started);

    if (entry.abortedFor === 'lease') {
      log.warn({ outcome: outcome.ok ? 'completed' : outcome.kind }, 'claim was taken over while the handler ran; its outcome is not recorded');
      this.o.onOutcome?.(claim.fileUrl, 'lost');
      return;
    }
    if (!outcome.ok && (entry.abortedFor === 'shutdown' || outcome.kind === 'unavailable')) {
      // Stopped by us, or the program is gone (not the file's fault): give the file back
      // without counting an attempt.
      await this.releaseOne(entry, log, entry.abortedFor === 'shutdown' ? 'stopped' : 'handler unavailable');
      return;
    }
    if (outcome.ok) await this.recordSuccess(entry, log, outcome, checked.fingerprint, inLine);
    else await this.recordFailure(entry, log, outcome, checked.fingerprint);
  }

  /**
   * Local folders are checked in line, polled (network) ones through the thread pool (see
   * file-checks.ts). Decided once per folder, as the watcher does at start. A file outside
   * every folder (not from the watcher) is checked through the pool: nothing says where it is.
   */
  private checksInLine(folder: RunnerFolder | undefined): boolean {
    if (!folder) return false;
    let inLine = this.inLine.get(folder);
    if (inLine === undefined) {
      inLine = !this.polled(folder);
      this.inLine.set(folder, inLine);
    }
    return inLine;
  }

  private polled(folder: RunnerFolder): boolean {
    const d = pollDecision(folder.poll ?? 'auto', folder.dir, this.o.isNetworkFs);
    if ('poll' in d) return d.poll;
    // Unknown: through the pool, which is only slower, never stuck on a hung server.
    this.o.logger.warn({ folder: folder.dir, err: d.unknown, workerId: this.o.workerId }, 'could not tell whether the folder is on a network file system; checking its files through the thread pool');
    return true;
  }

  /** `readFingerprint`: the file as it was when the handler started. */
  private async recordSuccess(entry: Running, log: Logger, outcome: Extract<HandlerOutcome, { ok: true }>, readFingerprint: string, inLine: boolean): Promise<void> {
    const { claim } = entry;
    const stats = outcome.stats ?? { total: 0, filtered: 0, persisted: 0 };
    let res;
    try {
      res = await this.batcher.complete({
        fileUrl: claim.fileUrl,
        token: claim.token,
        now: this.o.now(),
        afterAction: afterActionLabel(entry.settings.onSuccess),
        fingerprint: readFingerprint,
        stats: { totalRows: stats.total, filteredRows: stats.filtered, persistedRows: stats.persisted, durationMs: outcome.durationMs },
      });
    } catch (err) {
      // Not recorded: the lease will run out and the file will be retried (at-least-once).
      log.error({ err, durationMs: outcome.durationMs }, 'handler succeeded but the outcome could not be recorded; the file will run again');
      return;
    }
    if (res === 'lost') {
      log.warn({ durationMs: outcome.durationMs }, 'handler succeeded but the claim was taken over; nothing recorded, nothing moved');
      this.o.onOutcome?.(claim.fileUrl, 'lost');
      return;
    }
    entry.settled = true;
    this.o.metrics?.completed?.(outcome.durationMs);
    // Did the file change while it was handled? Then its new content is a new version.
    const changed: ChangedFile | null = inLine ? changedInLine(claim.fileUrl, readFingerprint) : await changedAsync(claim.fileUrl, readFingerprint);
    const after = changed === null ? await this.afterAction(entry, entry.settings.onSuccess, log) : 'keep (changed while handled)';
    // Where the plan says (the recorded label tells it): nothing more to write, the common case.
    if (!wentAsPlanned(entry.settings.onSuccess, entry.folder?.dir, claim.fileUrl, after)) await this.recordAfterAction(entry, after, log);
    log.info(
      { outcome: 'completed', durationMs: outcome.durationMs, records: outcome.stats, afterAction: after },
      'completed',
    );
    this.o.onOutcome?.(claim.fileUrl, 'completed');
    if (changed !== null && this.o.rediscover) {
      await this.o.rediscover({ ...changed, fileType: claim.fileType }).catch((err: unknown) => log.warn({ err }, 'could not re-discover the changed file'));
    }
  }

  /**
   * `readFingerprint`: the file as the handler read it. A file rewritten between discovery and
   * the run fails under the content it has now; recorded with the claim's older look, that
   * content would come back from the watcher as a new version, be claimed once more and, moved
   * to dead/ meanwhile, be recorded "vanished" (60-second soak, seed 569571688).
   */
  private async recordFailure(entry: Running, log: Logger, outcome: FailureOutcome, readFingerprint?: string): Promise<void> {
    const { claim } = entry;
    let res;
    try {
      res = await this.o.store.fail({
        fileUrl: claim.fileUrl,
        token: claim.token,
        error: outcome.error,
        permanent: outcome.permanent,
        now: this.o.now(),
        durationMs: outcome.durationMs,
        reason: outcome.permanent ? 'dead' : outcome.kind,
        deadAfterAction: afterActionLabel(entry.settings.onDead),
        ...(readFingerprint !== undefined && readFingerprint !== claim.fingerprint ? { fingerprint: readFingerprint } : {}),
      });
    } catch (err) {
      log.error({ err, error: outcome.error }, 'handler failed and the failure could not be recorded; the file will run again');
      return;
    }
    if (res === 'lost') {
      log.warn({ error: outcome.error }, 'handler failed but the claim was taken over; nothing recorded');
      this.o.onOutcome?.(claim.fileUrl, 'lost');
      return;
    }
    entry.settled = true;
    this.o.metrics?.failed?.(outcome.permanent ? 'permanent' : outcome.kind, outcome.durationMs);
    let after: string | undefined;
    if (res === 'dead') {
      // A file that is gone has nothing to move or delete.
      after = outcome.kind === 'vanished' ? GONE : await this.afterAction(entry, entry.settings.onDead, log);
      // Always kept for a dead file (rare): `ckpt retry --dead` brings it back from there.
      await this.recordAfterAction(entry, after, log);
    }
    const level = res === 'dead' ? 'error' : 'warn';
    const msg = res !== 'dead' ? 'failed; will retry' : outcome.permanent ? 'dead: permanent failure' : 'dead: no more retries';
    log[level]({ outcome: res, kind: outcome.kind, durationMs: outcome.durationMs, error: outcome.error, afterAction: after }, msg);
    this.o.onOutcome?.(claim.fileUrl, res);
  }

  /** `why` 'handler unavailable': logged at debug, the availability monitor says it once for all files. */
  private async releaseOne(entry: Running, log: Logger, why: 'stopped' | 'handler unavailable'): Promise<void> {
    try {
      const [r] = await this.o.store.release([{ fileUrl: entry.claim.fileUrl, token: entry.claim.token }], this.o.now());
      log[why === 'stopped' ? 'info' : 'debug']({ outcome: r === 'ok' ? 'released' : 'lost' }, `${why}: file given back without counting an attempt`);
    } catch (err) {
      log.error({ err }, 'could not give the file back; its lease will run out and it will be retried');
    }
    this.o.onOutcome?.(entry.claim.fileUrl, 'released');
  }

  private async afterAction(entry: Running, action: AfterAction, log: Logger): Promise<string> {
    const { claim, folder } = entry;
    if (!folder) return 'keep (outside the watched folders)';
    try {
      return await applyAfterAction(action, claim.fileUrl, {
        root: folder.dir,
        readyMarker: folder.readyMarker,
        ...(entry.identity ? { identity: entry.identity } : {}),
      });
    } catch (err) {
      logAfterActionError(log, err);
      return `failed: ${(err as Error).message}`;
    }
  }

  /** Where the after-action left the file, on the attempt's history row; a failure only costs the detail. */
  private async recordAfterAction(entry: Running, done: string, log: Logger): Promise<void> {
    try {
      await this.o.store.recordAfterAction({ fileUrl: entry.claim.fileUrl, token: entry.claim.token, done });
    } catch (err) {
      log.warn({ error: (err as Error).message, afterAction: done }, 'could not record where the after-action left the file');
    }
  }

  /**
   * A file whose outcome is recorded but whose after-action never ran (its worker died between
   * the commit and the move): whoever wins the store's compare-and-set runs it now, on the same
   * file only (same device and inode as recorded). A worker that took it over and died before
   * finishing (the label says "(redone by W at T)") is treated the same way: once W is gone,
   * the next one takes it (the soak killed such a worker 0.6 s after it started, and the file
   * stayed in the inbox for good).
   */
  async finishAfterAction(item: UnfinishedAfterAction): Promise<void> {
    const log = this.o.logger.child({ path: item.fileUrl, workerId: this.o.workerId });
    const folder = this.folderOf(item.fileUrl);
    const take = this.o.store.takeAfterAction;
    if (!folder || !take) return;
    const { base, redoneBy } = splitAfterActionLabel(item.afterAction);
    // Only for a worker that is gone: right after a commit, another daemon's watcher often sees
    // the file before its owner has moved it, and two movers would leave two copies.
    if (!workerGone(redoneBy ?? item.processedBy, this.o.host, item.recordedAt)) return;
    const action = item.status === 'completed' ? this.o.onSuccess : this.o.onDead;
    if (afterActionLabel(action) !== base) {
      log.warn({ recorded: item.afterAction }, 'a recorded after-action was never done, and the configuration now says otherwise: leaving the file');
      return;
    }
    const identity = identityOf(item.fingerprint);
    // The discovery that reported it may be a moment old: if the file is no longer there as
    // recorded, its worker did finish (or someone else did), and there is nothing to take.
    const before = await fs.promises.lstat(item.fileUrl).catch(() => null);
    if (!before || (identity && (before.dev !== identity.dev || before.ino !== identity.ino))) return;
    let mine: boolean;
    try {
      mine = await take.call(this.o.store, item, this.o.workerId, this.o.now());
    } catch (err) {
      log.warn({ err }, 'could not take over an unfinished after-action; the next scan tries again');
      return;
    }
    if (!mine) return;
    try {
      // A same-file-system move is link + unlink: a mover killed between the two left the file
      // under both names (two links). Then only the unlink is missing.
      const st = await fs.promises.lstat(item.fileUrl).catch(() => null);
      if (base.startsWith('move:') && st && st.nlink > 1 && identity && st.dev === identity.dev && st.ino === identity.ino && st.size === identity.size) {
        // Removed only while the name still holds that file (see removeIfSame).
        const r = await removeIfSame(item.fileUrl, identity);
        log.warn({ outcome: item.status, removed: r }, 'finished a move its worker did not: the file was already linked into the destination; removed it from the inbox');
        return;
      }
      if (st === null) {
        log.info({ outcome: item.status }, 'the unfinished after-action was finished meanwhile: the file is gone from the inbox');
        return;
      }
      const done = await applyAfterAction(action, item.fileUrl, { root: folder.dir, readyMarker: folder.readyMarker, ...(identity ? { identity } : {}) });
      log.warn({ outcome: item.status, afterAction: done, previousWorker: redoneBy ?? item.processedBy }, 'finished an after-action its worker did not (it stopped between the commit and the move)');
    } catch (err) {
      logAfterActionError(log, err);
    }
  }

  private folderOf(fileUrl: string, folders: readonly RunnerFolder[] = this.o.folders): RunnerFolder | undefined {
    let best: RunnerFolder | undefined;
    for (const f of folders) {
      const rel = path.relative(f.dir, fileUrl);
      if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) && (!best || f.dir.length > best.dir.length)) best = f;
    }
    return best;
  }

  /**
   * A reload: new claims use these settings; files already claimed keep theirs (ClaimSettings).
   * A larger pool fills at once; a smaller one shrinks as running files finish.
   */
  reconfigure(next: RunnerSettings): void {
    const leaseChanged = next.leaseMs !== this.o.leaseMs;
    Object.assign(this.o, next);
    if (leaseChanged && this.started && !this.renewalsStopped) {
      // Held claims carry a lease of the old length: renew no later than the old timer would,
      // and from then on every new lease / 3 (each renewal extends them by the new lease).
      const dueIn = Math.max(0, this.renewDueAt - performance.now());
      this.scheduleRenewal(Math.min(dueIn, this.renewEveryMs()));
    }
    this.wake();
  }

  /** Renew at a third of the lease: two renewals can fail (a busy database) before it runs out. */
  private renewEveryMs(): number {
    return Math.max(20, Math.floor(this.o.leaseMs / 3));
  }

  /**
   * One timer, re-armed after each renewal (not setInterval): a renewal that failed is retried
   * after RENEW_RETRY_MS, and renewals never pile up behind a slow one.
   */
  private scheduleRenewal(delayMs: number): void {
    if (this.renewalsStopped) return;
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.renewDueAt = performance.now() + delayMs;
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = null;
      void this.renewLeases();
    }, delayMs);
  }

  private async renewLeases(): Promise<void> {
    const timerLateMs = Math.max(0, Math.round(performance.now() - this.renewDueAt));
    let next = this.renewEveryMs();
    // Late means a third or less of the lease the claims hold (the shorter one across a reload).
    const third = Math.min(this.heldLeaseMs, this.o.leaseMs) / 3;
    try {
      const held: (Running | Queued)[] = [...this.running.values()].filter((r) => r.abortedFor === null && !r.settled);
      // Claimed ahead and not started: held just the same (a queued file may start any moment).
      held.push(...this.queued);
      if (held.length === 0) {
        this.heldLeaseMs = this.o.leaseMs;
        return;
      }
      const now = this.o.now();
      // How much of the shortest lease was left when this renewal began: with renewals every
      // lease/3 that is about 2/3 of the lease; much less means the renewal came late.
      let leftMs = Infinity;
      for (const r of held) leftMs = Math.min(leftMs, r.leaseEndsAt - now);
      const refs = held.map((r) => ({ fileUrl: r.claim.fileUrl, token: r.claim.token }));
      const t0 = performance.now();
      let lost: ClaimRef[];
      try {
        lost = await this.o.store.heartbeat(refs, this.o.leaseMs, now);
      } catch (err) {
        this.logStoreError(err, 'lease renewal');
        next = Math.min(next, RENEW_RETRY_MS);
        return;
      }
      const storeMs = Math.round(performance.now() - t0);
      this.heldLeaseMs = this.o.leaseMs;
      const lostKeys = new Set(lost.map((l) => `${l.fileUrl}\0${l.token}`));
      for (const r of held) if (!lostKeys.has(`${r.claim.fileUrl}\0${r.claim.token}`)) r.leaseEndsAt = now + this.o.leaseMs;
      // Late: a third of the lease or less was left (it is renewed with 2/3 left when on time).
      // Says whether the event loop was blocked (timerLateMs) or the write was slow (storeMs).
      if (leftMs <= third || storeMs >= third) {
        this.o.logger.warn({ workerId: this.o.workerId, claims: held.length, leftMs, timerLateMs, storeMs, leaseMs: this.o.leaseMs }, 'lease renewal late');
      }
      for (const l of lost) {
        const r = this.running.get(l.fileUrl);
        if (!r || r.claim.token !== l.token) {
          this.dropQueued(l, { leftMs, timerLateMs, storeMs });
          continue;
        }
        // Settled while the renewal was in flight: the row is completed/failed, not taken over.
        if (r.settled) continue;
        r.abortedFor = 'lease';
        this.log(r.claim).warn({ leftMs, timerLateMs, storeMs }, 'lease lost (taken over or requeued): stopping the handler');
        this.o.metrics?.failed?.('lease_lost');
        r.ac.abort(new Error('lease lost'));
      }
    } finally {
      this.scheduleRenewal(next);
    }
  }

  /** A queued claim whose lease was lost: it never started, so there is nothing to stop. */
  private dropQueued(ref: ClaimRef, why: { leftMs: number; timerLateMs: number; storeMs: number }): void {
    const i = this.queued.findIndex((q) => q.claim.fileUrl === ref.fileUrl && q.claim.token === ref.token);
    if (i < 0) return;
    const [q] = this.queued.splice(i, 1);
    this.log(q!.claim).warn(why, 'lease lost (taken over or requeued) before the file was started: dropped from the queue');
    this.o.metrics?.failed?.('lease_lost');
    this.o.onOutcome?.(ref.fileUrl, 'lost');
  }

  /** Stopping (or pausing): the files claimed ahead go back at once, in one transaction, no attempt counted. */
  private async releaseQueued(why: 'stopped' | 'handler unavailable' = 'stopped'): Promise<void> {
    const queued = this.queued.splice(0);
    if (queued.length === 0) return;
    let results: string[];
    try {
      results = await this.o.store.release(
        queued.map((q) => ({ fileUrl: q.claim.fileUrl, token: q.claim.token })),
        this.o.now(),
      );
    } catch (err) {
      for (const q of queued) this.log(q.claim).error({ err }, 'could not give the file back; its lease will run out and it will be retried');
      results = [];
    }
    queued.forEach((q, i) => {
      const r = results[i];
      if (r !== undefined) this.log(q.claim)[why === 'stopped' ? 'info' : 'debug']({ outcome: r === 'ok' ? 'released' : 'lost' }, `${why}: file claimed ahead given back without counting an attempt`);
      this.o.onOutcome?.(q.claim.fileUrl, 'released');
    });
  }

  private logStoreError(err: unknown, what: string): void {
    // One line per burst, not one per poll: a locked database would otherwise log 4 lines a second.
    const now = this.o.now();
    if (now - this.storeErrorLogged < 10_000) return;
    this.storeErrorLogged = now;
    this.o.logger.error({ err, workerId: this.o.workerId }, `${what} failed`);
  }

  /**
   * Stop claiming; let running handlers finish for up to `graceMs`; then stop the rest and
   * give their files back (no attempt counted). `abortNow()` cuts the grace short.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    await this.filling;
    await this.releaseQueued();
    const all = () => Promise.allSettled([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.abortNow();
    await all();
    this.renewalsStopped = true;
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
  }

  /** Second signal: stop every running handler now; their files are given back. */
  abortNow(): void {
    this.stopping = true;
    for (const r of this.running.values()) {
      if (r.abortedFor === null) {
        r.abortedFor = 'shutdown';
        r.ac.abort(new Error('ckpt is stopping'));
      }
    }
  }
}

/** A handler's failure, or one found before the handler ran (vanished, unreadable...). */
type FailureOutcome = Omit<Extract<HandlerOutcome, { ok: false }>, 'kind'> & { kind: string };

/**
 * True when `workerId` (`host:pid`) names a process of this host that no longer runs. Workers of
 * other hosts cannot be checked: they are never taken for gone. A worker that wrote the row
 * (at `recordedAt`) before this machine booted is gone even if its pid runs again: after a
 * power cut, the ckpt started at boot may well have the same pid as the one that was cut off.
 */
function workerGone(workerId: string | null, host: string, recordedAt?: number): boolean {
  if (workerId === null || !workerId.startsWith(`${host}:`)) return false;
  if (beforeBoot(recordedAt)) return true;
  const pid = Number(workerId.slice(host.length + 1));
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  return !pidExists(pid);
}

/**
 * `move:/done (redone by host:12 at 2026-...)` -> base `move:/done`, redoneBy `host:12`; a label
 * without the suffix has no redoer. (The suffix is written by the store's takeAfterAction.)
 */
function splitAfterActionLabel(label: string): { base: string; redoneBy: string | null } {
  const m = / \(redone by (\S+) at [^)]*\)$/.exec(label);
  return m ? { base: label.slice(0, m.index), redoneBy: m[1]! } : { base: label, redoneBy: null };
}

/** Device and inode from a fingerprint `size:mtimeMs:dev:ino` (see fingerprintOf). */
function identityOf(fingerprint: string): FileIdentity | undefined {
  const [size, mtimeMs, dev, ino] = fingerprint.split(':').map(Number);
  if (![size, mtimeMs, dev, ino].every((n) => n !== undefined && Number.isFinite(n))) return undefined;
  return { size: size!, mtimeMs: mtimeMs!, dev: dev!, ino: ino! };
}
