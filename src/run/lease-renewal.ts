/**
 * Renews the leases of every claim the runner holds (running and claimed ahead), on one timer
 * re-armed after each renewal. A claim the store reports lost is aborted (running: its handler
 * is stopped and nothing is recorded) or dropped (queued: it never started).
 */
import type { ClaimRef } from '../store/types.js';
import { type Queued, type ResolvedRunnerOptions, type Running, claimLog, fileLabels } from './runner-options.js';
import { folderOf } from './folders.js';
import type { StoreErrorLog } from './store-error-log.js';

/**
 * A renewal that failed (the database busy past lockTimeoutMs) is tried again this soon, not a
 * whole lease/3 later: at the normal pace two more failures would let the lease run out.
 */
const RENEW_RETRY_MS = 500;

/** How late a renewal was, logged with every lost or late lease. */
interface Lateness {
  leftMs: number;
  timerLateMs: number;
  storeMs: number;
}

export class LeaseRenewal {
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() when the pending renewal timer should fire (its lateness is logged). */
  private dueAt = 0;
  private stopped = false;
  /**
   * The lease length the held claims were last given: differs from o.leaseMs between a reload
   * that changed it and the next renewal, so that lateness is judged by the lease they hold.
   */
  private heldLeaseMs: number;

  constructor(
    private readonly o: ResolvedRunnerOptions,
    /** The runner's own collections, read (and the queue spliced) in place. */
    private readonly running: ReadonlyMap<string, Running>,
    private readonly queued: Queued[],
    private readonly storeErrors: StoreErrorLog,
  ) {
    this.heldLeaseMs = o.leaseMs;
  }

  start(): void {
    this.schedule(this.everyMs());
  }

  /**
   * The lease length changed (a reload). Held claims carry a lease of the old length: renew no
   * later than the old timer would, and from then on every new lease / 3 (each renewal extends
   * them by the new lease).
   */
  leaseChanged(): void {
    if (this.stopped) return;
    const dueIn = Math.max(0, this.dueAt - performance.now());
    this.schedule(Math.min(dueIn, this.everyMs()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Renew at a third of the lease: two renewals can fail (a busy database) before it runs out. */
  private everyMs(): number {
    return Math.max(20, Math.floor(this.o.leaseMs / 3));
  }

  /**
   * One timer, re-armed after each renewal (not setInterval): a renewal that failed is retried
   * after RENEW_RETRY_MS, and renewals never pile up behind a slow one.
   */
  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = performance.now() + delayMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.renew();
    }, delayMs);
  }

  private async renew(): Promise<void> {
    const timerLateMs = Math.max(0, Math.round(performance.now() - this.dueAt));
    let next = this.everyMs();
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
        this.storeErrors.error(err, 'lease renewal');
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
      this.stopLost(lost, { leftMs, timerLateMs, storeMs });
    } finally {
      this.schedule(next);
    }
  }

  /** Claims the store no longer holds for us: stop their handlers, or drop them from the queue. */
  private stopLost(lost: readonly ClaimRef[], why: Lateness): void {
    for (const l of lost) {
      const r = this.running.get(l.fileUrl);
      if (!r || r.claim.token !== l.token) {
        this.dropQueued(l, why);
        continue;
      }
      // Settled while the renewal was in flight: the row is completed/failed, not taken over.
      if (r.settled) continue;
      r.abortedFor = 'lease';
      claimLog(this.o.logger, r.claim, this.o.workerId).warn(why, 'lease lost (taken over or requeued): stopping the handler');
      this.o.metrics?.failed?.('lease_lost', undefined, fileLabels(r.claim, r.folder));
      r.ac.abort(new Error('lease lost'));
    }
  }

  /** A queued claim whose lease was lost: it never started, so there is nothing to stop. */
  private dropQueued(ref: ClaimRef, why: Lateness): void {
    const i = this.queued.findIndex((q) => q.claim.fileUrl === ref.fileUrl && q.claim.token === ref.token);
    if (i < 0) return;
    const [q] = this.queued.splice(i, 1);
    claimLog(this.o.logger, q!.claim, this.o.workerId).warn(why, 'lease lost (taken over or requeued) before the file was started: dropped from the queue');
    this.o.metrics?.failed?.('lease_lost', undefined, fileLabels(q!.claim, folderOf(q!.claim.fileUrl, q!.settings.folders)));
    this.o.onOutcome?.(ref.fileUrl, 'lost');
  }
}
