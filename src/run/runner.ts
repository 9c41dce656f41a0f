/**
 * The claim loop: keeps up to `concurrency` handlers running, claiming in batches as slots
 * free up, renews the leases of what it holds, and records every outcome with the claim token.
 *
 *   wake() / poll timer -> fill() -> store.claim(free slots) -> runOne() per claim
 *   runOne: check the file -> handler -> complete | fail (token) -> after-action (only if 'ok')
 *   lease timer: store.heartbeat(held) -> lost claims are aborted and never recorded
 *
 * Nothing here throws out of the loop: a bad file, a handler crash or a store error is logged
 * with the file's path, attempt and worker id, and the loop goes on.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { fingerprintOf } from '../watch/fingerprint.js';
import type { CheckpointStore, Claim, ClaimRef, DiscoveredFile, ExpiredClaim, UnfinishedAfterAction } from '../store/types.js';
import { type AfterAction, type FileIdentity, afterActionLabel, applyAfterAction, removeIfSame } from './after-action.js';
import { CompletionBatcher } from './completion-batcher.js';
import type { Handler, HandlerOutcome } from './handler.js';
import { killOrphanedHandler } from './orphans.js';

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
}

interface Running {
  claim: Claim;
  ac: AbortController;
  /** Why we aborted: the lease was lost (do not record anything) or the daemon stops (release). */
  abortedFor: 'lease' | 'shutdown' | null;
  /** The outcome is committed: the claim is over, only the after-action is left (no renewals). */
  settled: boolean;
  /** Device and inode of the file the handler read: after-actions touch only that file. */
  identity?: FileIdentity;
  /** Epoch ms (the runner's clock) when the lease runs out unless renewed. */
  leaseEndsAt: number;
  done: Promise<void>;
}

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
  /** True when the last claim found nothing: with nothing running, this process is idle. */
  private drained = false;
  private storeErrorLogged = 0;
  private readonly expiredDead: ExpiredClaim[] = [];

  constructor(opts: RunnerOptions) {
    this.o = { pollMs: DEFAULT_POLL_MS, now: Date.now, ...opts };
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

  /** Nothing running and the last claim found nothing claimable. */
  get idle(): boolean {
    return this.running.size === 0 && this.drained && this.filling === null && !this.fillScheduled;
  }

  private async fill(): Promise<void> {
    do {
        this.fillAgain = false;
        const free = this.o.concurrency - this.running.size;
        if (free <= 0 || this.stopping) break;
        const now = this.o.now();
        let claims: Claim[];
        try {
          claims = await this.o.store.claim(free, {
            workerId: this.o.workerId,
            leaseMs: this.o.leaseMs,
            now,
            onExpired: (expired) => this.takeOver(expired),
            deadAfterAction: afterActionLabel(this.o.onDead),
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
          this.launch(c);
        }
        // A full batch means there may be more: go round again while slots are free.
        if (claims.length === free) this.fillAgain = true;
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

  private launch(claim: Claim): void {
    const entry: Running = { claim, ac: new AbortController(), abortedFor: null, settled: false, leaseEndsAt: claim.leaseExpiresAt, done: Promise.resolve() };
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
      applyAfterAction(this.o.onDead, e.fileUrl, { root: folder.dir, readyMarker: folder.readyMarker }).then(
        (done) => log.error({ outcome: 'dead', afterAction: done }, 'dead: its worker died on the last attempt'),
        (err: unknown) => log.error({ err }, 'after-action failed; the file stays where it is'),
      );
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

    const checked = await checkFile(claim.fileUrl, this.folderOf(claim.fileUrl)?.dir);
    if (!('error' in checked)) entry.identity = identityOf(checked.fingerprint);
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

    const outcome = await this.o.handler({
      fileUrl: claim.fileUrl,
      fileType: claim.fileType,
      attempt: claim.attempt,
      workerId: this.o.workerId,
      idempotencyKey: claim.idempotencyKey,
      claimToken: claim.token,
      signal: entry.ac.signal,
      logger: log,
      onSpawn: (pid) => {
        this.o.store.setHandlerPid(ref, pid).catch((err: unknown) => log.warn({ err }, 'could not record the handler pid'));
      },
    });

    if (entry.abortedFor === 'lease') {
      log.warn({ outcome: outcome.ok ? 'completed' : outcome.kind }, 'claim was taken over while the handler ran; its outcome is not recorded');
      this.o.onOutcome?.(claim.fileUrl, 'lost');
      return;
    }
    if (entry.abortedFor === 'shutdown' && !outcome.ok) {
      // Stopped by us: give the file back without counting an attempt.
      await this.releaseOne(entry, log);
      return;
    }
    if (outcome.ok) await this.recordSuccess(entry, log, outcome, checked.fingerprint);
    else await this.recordFailure(entry, log, outcome);
  }

  /** `readFingerprint`: the file as it was when the handler started. */
  private async recordSuccess(entry: Running, log: Logger, outcome: Extract<HandlerOutcome, { ok: true }>, readFingerprint: string): Promise<void> {
    const { claim } = entry;
    const stats = outcome.stats ?? { total: 0, filtered: 0, persisted: 0 };
    let res;
    try {
      res = await this.batcher.complete({
        fileUrl: claim.fileUrl,
        token: claim.token,
        now: this.o.now(),
        afterAction: afterActionLabel(this.o.onSuccess),
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
    const changed = await statIfChanged(claim.fileUrl, readFingerprint);
    const after = changed === null ? await this.afterAction(entry, this.o.onSuccess, log) : 'keep (changed while handled)';
    log.info(
      { outcome: 'completed', durationMs: outcome.durationMs, records: outcome.stats, afterAction: after },
      'completed',
    );
    this.o.onOutcome?.(claim.fileUrl, 'completed');
    if (changed !== null && this.o.rediscover) {
      await this.o.rediscover({ ...changed, fileType: claim.fileType }).catch((err: unknown) => log.warn({ err }, 'could not re-discover the changed file'));
    }
  }

  private async recordFailure(entry: Running, log: Logger, outcome: FailureOutcome): Promise<void> {
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
        deadAfterAction: afterActionLabel(this.o.onDead),
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
    if (res === 'dead') after = await this.afterAction(entry, this.o.onDead, log);
    const level = res === 'dead' ? 'error' : 'warn';
    log[level]({ outcome: res, kind: outcome.kind, durationMs: outcome.durationMs, error: outcome.error, afterAction: after }, res === 'dead' ? 'dead: no more retries' : 'failed; will retry');
    this.o.onOutcome?.(claim.fileUrl, res);
  }

  private async releaseOne(entry: Running, log: Logger): Promise<void> {
    try {
      const [r] = await this.o.store.release([{ fileUrl: entry.claim.fileUrl, token: entry.claim.token }], this.o.now());
      log.info({ outcome: r === 'ok' ? 'released' : 'lost' }, 'stopped: file given back without counting an attempt');
    } catch (err) {
      log.error({ err }, 'could not give the file back; its lease will run out and it will be retried');
    }
    this.o.onOutcome?.(entry.claim.fileUrl, 'released');
  }

  private async afterAction(entry: Running, action: AfterAction, log: Logger): Promise<string> {
    const { claim } = entry;
    const folder = this.folderOf(claim.fileUrl);
    if (!folder) return 'keep (outside the watched folders)';
    try {
      return await applyAfterAction(action, claim.fileUrl, {
        root: folder.dir,
        readyMarker: folder.readyMarker,
        ...(entry.identity ? { identity: entry.identity } : {}),
      });
    } catch (err) {
      log.error({ err }, 'after-action failed; the file stays where it is');
      return `failed: ${(err as Error).message}`;
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
    if (!workerGone(redoneBy ?? item.processedBy, this.o.host)) return;
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
      log.error({ err }, 'after-action failed; the file stays where it is');
    }
  }

  private folderOf(fileUrl: string): RunnerFolder | undefined {
    let best: RunnerFolder | undefined;
    for (const f of this.o.folders) {
      const rel = path.relative(f.dir, fileUrl);
      if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) && (!best || f.dir.length > best.dir.length)) best = f;
    }
    return best;
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
    try {
      const held = [...this.running.values()].filter((r) => r.abortedFor === null && !r.settled);
      if (held.length === 0) return;
      const now = this.o.now();
      // How much of the shortest lease was left when this renewal began: with renewals every
      // lease/3 that is about 2/3 of the lease; much less means the renewal came late.
      const leftMs = Math.min(...held.map((r) => r.leaseEndsAt)) - now;
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
      const lostKeys = new Set(lost.map((l) => `${l.fileUrl}\0${l.token}`));
      for (const r of held) if (!lostKeys.has(`${r.claim.fileUrl}\0${r.claim.token}`)) r.leaseEndsAt = now + this.o.leaseMs;
      // Late: a third of the lease or less was left (it is renewed with 2/3 left when on time).
      // Says whether the event loop was blocked (timerLateMs) or the write was slow (storeMs).
      if (leftMs <= this.o.leaseMs / 3 || storeMs >= this.o.leaseMs / 3) {
        this.o.logger.warn({ workerId: this.o.workerId, claims: held.length, leftMs, timerLateMs, storeMs, leaseMs: this.o.leaseMs }, 'lease renewal late');
      }
      for (const l of lost) {
        const r = this.running.get(l.fileUrl);
        // Settled while the renewal was in flight: the row is completed/failed, not taken over.
        if (!r || r.claim.token !== l.token || r.settled) continue;
        r.abortedFor = 'lease';
        this.log(r.claim).warn({ leftMs, timerLateMs, storeMs }, 'lease lost (taken over or requeued): stopping the handler');
        this.o.metrics?.failed?.('lease_lost');
        r.ac.abort(new Error('lease lost'));
      }
    } finally {
      this.scheduleRenewal(next);
    }
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

interface FileProblem {
  permanent: boolean;
  reason: 'vanished' | 'unreadable' | 'not_a_file' | 'outside_root';
  error: string;
}

/**
 * fs.lstat and fs.access through their callback API: the same system calls and the same errors
 * as fs.promises, for about half the CPU (measured here under load: lstat 22-29 us a call
 * against 57-62 us, access 6-12 us against 21-27 us; scripts/bench/findings.md). The runner
 * makes three of these per file.
 */
function lstat(p: string): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.lstat(p, (err, st) => (err ? reject(err) : resolve(st))));
}

function access(p: string, mode: number): Promise<void> {
  return new Promise((resolve, reject) => fs.access(p, mode, (err) => (err ? reject(err) : resolve())));
}

/**
 * Before running the handler: is the file still there, a regular file, and readable? Returns
 * its fingerprint then (the content the handler is about to read).
 */
async function checkFile(fileUrl: string, root: string | undefined): Promise<FileProblem | { fingerprint: string }> {
  // A folder on the way may have been swapped for a link leading out of the watched root since
  // the file was found: symbolic links are never followed out of it.
  if (root !== undefined) {
    try {
      const [realRoot, realDir] = await Promise.all([fs.promises.realpath(root), fs.promises.realpath(path.dirname(fileUrl))]);
      const rel = path.relative(realRoot, realDir);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        return { permanent: true, reason: 'outside_root', error: `refused: the path now leads outside the watched folder (${realDir}) through a symbolic link` };
      }
    } catch {
      // A folder on the way is gone: the lstat below says "vanished".
    }
  }
  let st: fs.Stats;
  try {
    st = await lstat(fileUrl);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      // Settled with a reason, not retried forever: it is not coming back under this name.
      return { permanent: true, reason: 'vanished', error: 'file vanished before it was handled' };
    }
    return { permanent: false, reason: 'unreadable', error: `cannot stat file: ${(err as Error).message}` };
  }
  if (!st.isFile()) {
    return { permanent: true, reason: 'not_a_file', error: `not a regular file (${st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : 'a special file'})` };
  }
  try {
    await access(fileUrl, fs.constants.R_OK);
  } catch (err) {
    return { permanent: false, reason: 'unreadable', error: `cannot read file: ${(err as Error).message}` };
  }
  return { fingerprint: fingerprintOf(st) };
}

/**
 * True when `workerId` (`host:pid`) names a process of this host that no longer runs. Workers of
 * other hosts cannot be checked: they are never taken for gone.
 */
function workerGone(workerId: string | null, host: string): boolean {
  if (workerId === null || !workerId.startsWith(`${host}:`)) return false;
  const pid = Number(workerId.slice(host.length + 1));
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
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

/** The file's current identity if it changed since the handler started, else null. */
async function statIfChanged(fileUrl: string, readFingerprint: string): Promise<Omit<DiscoveredFile, 'fileType'> | null> {
  try {
    const st = await lstat(fileUrl);
    const fp = fingerprintOf(st);
    if (fp === readFingerprint || !st.isFile()) return null;
    return { fileUrl, mtimeMs: st.mtimeMs, size: st.size, fingerprint: fp };
  } catch {
    return null;
  }
}
