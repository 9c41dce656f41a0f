/**
 * The claim loop: keeps up to `concurrency` handlers running, claiming in batches as slots
 * free up, renews the leases of what it holds, and records every outcome with the claim token.
 *
 *   wake() / poll timer -> fill() -> per lane (lanes.ts: a route's file types, or the rest):
 *     store.claim(its free slots under its cap + claim-ahead, its types) -> queue -> runOne() per free slot
 *   runOne (run-one.ts): check the file -> handler -> settle.ts: complete | fail (token) -> after-action (only if 'ok')
 *   lease timer (lease-renewal.ts): store.heartbeat(running + queued) -> lost claims are aborted
 *   (running) or dropped (queued) and never recorded; stop() gives queued claims back at once
 *
 * Without routes there is one lane and one unfiltered claim, as before routes existed.
 * Claim-ahead (claimAhead()): per lane, only while its handler runs average under 50 ms. The file checks run
 * in line for local folders and through the thread pool for polled ones (file-checks.ts).
 *
 * Nothing here throws out of the loop: a bad file, a handler crash or a store error is logged
 * with the file's path, attempt and worker id, and the loop goes on.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { beforeBoot } from '../store/fallback/process-identity.js';
import type { Claim, UnfinishedAfterAction } from '../store/types.js';
import { afterActionLabel, applyAfterAction, removeIfSame } from './after-action.js';
import { logAfterActionError } from './after-action-log.js';
import { CompletionBatcher } from './completion-batcher.js';
import { ExpiredClaims } from './expired-claims.js';
import { CheckPlacement, folderOf } from './folders.js';
import { splitAfterActionLabel } from '../store/rules/after-action-label.js';
import { parseFingerprint } from '../file-identity.js';
import { pidExists } from '../pid-exists.js';
import { type Lane, Lanes } from './lanes.js';
import { LeaseRenewal } from './lease-renewal.js';
import { type RunOneContext, runOne } from './run-one.js';
import { type ClaimSettings, type Queued, type ResolvedRunnerOptions, type Running, type RunnerOptions, type RunnerSettings, claimLog, fileLabels } from './runner-options.js';
import { Settler } from './settle.js';
import { StoreErrorLog } from './store-error-log.js';

export type { OutcomeKind, RunnerFolder, RunnerMetrics, RunnerOptions, RunnerSettings } from './runner-options.js';

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

export class Runner {
  private readonly o: ResolvedRunnerOptions;
  private readonly running = new Map<string, Running>();
  /** Claimed ahead, not started yet (oldest first); their leases are renewed with the running ones. */
  private readonly queued: Queued[] = [];
  /** Per lane: moving average of handler runs (ms, from the checks to the handler's return); none before the first. */
  private readonly runMsAvg = new Map<string, number>();
  private lanes: Lanes;
  /** Which lane a fill starts with (see Lanes.from). */
  private turn = 0;
  private readonly runContext: RunOneContext;
  private filling: Promise<void> | null = null;
  /** A fill is due on the next turn of the event loop (see wake()). */
  private fillScheduled = false;
  private fillAgain = false;
  private stopping = false;
  private started = false;
  private pollTimer: NodeJS.Timeout | null = null;
  /** True when the last claim found nothing: with nothing running, this process is idle. */
  private drained = false;
  private readonly storeErrors: StoreErrorLog;
  private readonly leases: LeaseRenewal;
  private readonly expired: ExpiredClaims;

  constructor(opts: RunnerOptions) {
    this.o = { pollMs: DEFAULT_POLL_MS, now: Date.now, ...opts };
    this.lanes = new Lanes(this.o);
    this.runContext = {
      o: this.o,
      placement: new CheckPlacement(this.o),
      settle: new Settler(this.o, new CompletionBatcher(opts.store)),
      noteRunMs: (ms, fileType) => this.noteRunMs(ms, fileType),
    };
    this.storeErrors = new StoreErrorLog(this.o);
    this.expired = new ExpiredClaims(this.o, (folder) => this.lanes.ofFolder(folder).settings.onDead);
    this.leases = new LeaseRenewal(this.o, this.running, this.queued, this.storeErrors);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.pollTimer = setInterval(() => this.wake(), this.o.pollMs);
    this.leases.start();
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
   * How many files a lane holds beyond its free slots: none until one of its handler runs has
   * been timed or while its runs average FAST_RUN_MS or more. Also bounded so that the last
   * queued file starts within a third of the lease (about queued * average / cap ms from now),
   * i.e. before its lease could run out even if two renewals in a row failed; with the default
   * 30 s lease that bound is 64 from a 1 s lease upward (cap 4, runs under 50 ms).
   */
  private claimAhead(lane: Lane): number {
    const avg = this.runMsAvg.get(lane.key);
    if (avg === undefined || avg >= FAST_RUN_MS) return 0;
    const byLease = Math.floor(((this.o.leaseMs / 3) * lane.cap) / Math.max(1, avg));
    return Math.min(MAX_CLAIM_AHEAD, byLease);
  }

  private noteRunMs(ms: number, fileType: string): void {
    const key = this.lanes.of(fileType).key;
    const avg = this.runMsAvg.get(key);
    this.runMsAvg.set(key, avg === undefined ? ms : avg + RUN_MS_ALPHA * (ms - avg));
  }

  /** Running files of this lane. */
  private runningIn(lane: Lane): number {
    // Without routes (one lane) this is on every launch of the hot path: no walk.
    if (this.lanes.all.length === 1) return this.running.size;
    let n = 0;
    for (const r of this.running.values()) if (this.lanes.of(r.claim.fileType) === lane) n++;
    return n;
  }

  /** Start queued claims in the free slots, oldest first, each only while its lane is under its cap. */
  private launchQueued(): void {
    for (let i = 0; i < this.queued.length && this.running.size < this.o.concurrency && !this.stopping; ) {
      const q = this.queued[i]!;
      const lane = this.lanes.of(q.claim.fileType);
      if (lane.paused() || this.runningIn(lane) >= lane.cap) {
        i++;
        continue;
      }
      this.queued.splice(i, 1);
      this.launch(q.claim, q.leaseEndsAt, q.settings);
    }
  }

  private async fill(): Promise<void> {
    do {
      this.fillAgain = false;
      if (this.stopping) break;
      await this.releasePaused();
      this.launchQueued();
      // Each round starts with the next lane, so that no feed is always the last one served.
      let asked = false;
      let found = false;
      for (const lane of this.lanes.from(this.turn++)) {
        if (this.stopping || lane.paused()) continue;
        const got = await this.fillLane(lane);
        if (got === null) break;
        if (got === undefined) continue;
        asked = true;
        if (got > 0) found = true;
      }
      if (asked) this.drained = !found;
    } while (this.fillAgain && !this.stopping);
  }

  /**
   * One lane's claim: up to its free slots (under its cap and the pool's) plus claim-ahead.
   * How many it got; undefined when it had no room; null when the store failed (logged).
   */
  private async fillLane(lane: Lane): Promise<number | null | undefined> {
    const free = Math.min(lane.cap - this.runningIn(lane), this.o.concurrency - this.running.size);
    const ahead = this.claimAhead(lane);
    const queued = this.lanes.all.length === 1 ? this.queued.length : this.queued.reduce((n, q) => n + (this.lanes.of(q.claim.fileType) === lane ? 1 : 0), 0);
    // Refill the queue when it is down to half (a claim then carries at least half of it),
    // not after every file it hands out: that would be one small claim per freed slot again.
    if (free <= 0 && queued > ahead / 2) return undefined;
    const want = free + ahead - queued;
    if (want <= 0) return undefined;
    const now = this.o.now();
    const settings = lane.settings;
    const claims = await this.claim(want, lane, now);
    if (claims === null) return null;
    if (claims.length === 0) return 0;
    if (this.stopping) {
      // stop() began while the claim waited for the lock: give these straight back.
      await this.o.store.release(claims, this.o.now()).catch((err: unknown) => this.storeErrors.error(err, 'release'));
      return claims.length;
    }
    for (const c of claims) {
      this.o.metrics?.claimed?.(1, fileLabels(c, folderOf(c.fileUrl, settings.folders)));
      const seen = this.o.discoveredAt?.(c.fileUrl);
      if (seen !== undefined) this.o.metrics?.discoveryToClaim?.(Math.max(0, now - seen));
      this.queued.push({ claim: c, settings, leaseEndsAt: c.leaseExpiresAt });
    }
    this.launchQueued();
    // A full batch means there may be more: go round again (it stops when slots and queue are full).
    if (claims.length === want) this.fillAgain = true;
    return claims.length;
  }

  /** One claim transaction (it also sweeps expired leases); null when the store failed (logged). */
  private async claim(want: number, lane: Lane, now: number): Promise<Claim[] | null> {
    try {
      const claims = await this.o.store.claim(want, {
        workerId: this.o.workerId,
        leaseMs: this.o.leaseMs,
        now,
        onExpired: (expired) => this.expired.takeOver(expired),
        // Expired leases are swept under their route's retry and onDead (see ExpiredClaims).
        deadAfterAction: afterActionLabel(this.o.onDead),
        routeOf: this.lanes.expiryRoute,
        ...(lane.filter ? { fileTypes: lane.filter } : {}),
      });
      this.storeErrors.reset();
      return claims;
    } catch (err) {
      this.storeErrors.error(err, 'claim');
      return null;
    } finally {
      this.expired.afterClaim();
    }
  }

  private launch(claim: Claim, leaseEndsAt: number, settings: ClaimSettings): void {
    const folder = folderOf(claim.fileUrl, settings.folders);
    const entry: Running = { claim, settings, ac: new AbortController(), abortedFor: null, settled: false, leaseEndsAt, folder, done: Promise.resolve() };
    this.running.set(claim.fileUrl, entry);
    entry.done = runOne(entry, this.runContext)
      .catch((err: unknown) => {
        this.log(claim).error({ err }, 'unexpected error while handling a file');
      })
      .finally(() => {
        this.running.delete(claim.fileUrl);
        this.wake();
      });
  }

  private log(c: Claim): Logger {
    return claimLog(this.o.logger, c, this.o.workerId);
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
    const folder = folderOf(item.fileUrl, this.o.folders);
    const take = this.o.store.takeAfterAction;
    if (!folder || !take) return;
    const { base, redoneBy } = splitAfterActionLabel(item.afterAction);
    // Only for a worker that is gone: right after a commit, another daemon's watcher often sees
    // the file before its owner has moved it, and two movers would leave two copies.
    if (!workerGone(redoneBy ?? item.processedBy, this.o.host, item.recordedAt)) return;
    // The route of the folder's file type (the one the file ran under).
    const route = this.lanes.ofFolder(folder).settings;
    const action = item.status === 'completed' ? route.onSuccess : route.onDead;
    if (afterActionLabel(action) !== base) {
      log.warn({ recorded: item.afterAction }, 'a recorded after-action was never done, and the configuration now says otherwise: leaving the file');
      return;
    }
    const identity = parseFingerprint(item.fingerprint);
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

  /**
   * A reload: new claims use these settings; files already claimed keep theirs (ClaimSettings).
   * A larger pool fills at once; a smaller one shrinks as running files finish.
   */
  reconfigure(next: RunnerSettings): void {
    const leaseChanged = next.leaseMs !== this.o.leaseMs;
    Object.assign(this.o, next);
    this.lanes = new Lanes(this.o);
    if (leaseChanged && this.started) this.leases.leaseChanged();
    this.wake();
  }

  /** The files claimed ahead for lanes whose handler program is gone go back (see releaseQueued). */
  private async releasePaused(): Promise<void> {
    if (!this.lanes.all.some((l) => l.paused())) return;
    const keep: Queued[] = [];
    const back: Queued[] = [];
    for (const q of this.queued) (this.lanes.of(q.claim.fileType).paused() ? back : keep).push(q);
    this.queued.splice(0, this.queued.length, ...keep);
    await this.releaseQueued('handler unavailable', back);
  }

  /** Stopping (or pausing): the files claimed ahead go back at once, in one transaction, no attempt counted. */
  private async releaseQueued(why: 'stopped' | 'handler unavailable' = 'stopped', queued = this.queued.splice(0)): Promise<void> {
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
    this.leases.stop();
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
