import type { Logger } from 'pino';
import { toStoreError } from '../sqlite-errors.js';
import { iso } from '../time.js';
import type { Claim, ClaimOptions, ExpiredClaim } from '../types.js';
import { type ClaimMarkers, type Marker, claimStands } from './claim-markers.js';
import { type Expiring, protectedUntil } from './fencing.js';
import type { FallbackPrimary } from './primary.js';
// Protection reads the same batches as the stores' lease sweep.
import { SWEEP_BATCH } from '../rules/transitions.js';


/** What the normal-mode side needs from the FallbackStore it serves. */
export interface NormalScreenDeps {
  db: FallbackPrimary;
  markers: ClaimMarkers;
  probeMs: number;
  clock: () => number;
  log: Logger | undefined;
  counters: { deferredForMarkers: number; protectedLeases: number };
  /** Replay what dead processes left behind (their markers block files until it is in). */
  reconcileOrphans: () => Promise<void>;
}

/**
 * The normal-mode side of coexisting with degraded processes' claim markers: before a database
 * claim, keep the leases that markers protect; after it, give back the files a marker (or an
 * outcome not yet replayed) still holds. Cheap when no marker exists: one readdir-free check.
 */
export class NormalScreen {
  constructor(private readonly d: NormalScreenDeps) {}

  /**
   * Before a normal-mode claim sweeps expired leases (fencing.ts): claims that degraded
   * processes hold under markers, or finished and have not replayed yet, keep their database
   * lease. The markers are read after the caller took `opts.now` (the sweep's time), so a marker
   * written before a lease ran out is seen here. Without this, the sweep took over a claim whose
   * worker had completed it from memory, and the next run found the file moved: dead, "vanished".
   * Returns whether any marker existed (the screen after the claim needs to know).
   */
  async protect(opts: ClaimOptions): Promise<boolean> {
    const { markers, db } = this.d;
    if (!markers.anyExist()) return false;
    let extended = 0;
    let deadOwners = 0;
    try {
      // Batch by batch as the sweep reads them: once a batch holds nothing to protect, that is
      // the batch the sweep takes. 16 batches of 256 bound the work after a very long lock.
      for (let round = 0, skip = 0; round < 16; round++) {
        const batch = await db.expiring(opts.now, SWEEP_BATCH, skip);
        const keep: (Expiring & { until: number })[] = [];
        for (const e of batch) {
          if (!markers.mayHave(e.fileUrl)) continue;
          let p0: { until: number; ownerGone: boolean } | null;
          try {
            p0 = protectedUntil(markers.current(e.fileUrl), e.token, opts.now, opts.leaseMs);
          } catch {
            p0 = { until: opts.now + opts.leaseMs, ownerGone: false }; // unreadable: held, never free
          }
          if (p0?.ownerGone) deadOwners++;
          if (p0 && p0.until > opts.now) keep.push({ ...e, until: p0.until });
        }
        if (keep.length === 0) break;
        extended += await db.extendLeases(keep, opts.now);
        // The rows left unprotected stay expired and come first in the next read: step over them.
        skip += batch.length - keep.length;
      }
    } catch (err) {
      throw toStoreError(err, 'extend leases held under claim markers');
    }
    // Their outcomes go in now (protected meanwhile, so the sweep did not end those claims).
    if (deadOwners > 0) await this.reconcile();
    if (extended > 0) {
      this.d.counters.protectedLeases += extended;
      this.d.log?.info({ leases: extended, workerId: opts.workerId }, 'kept leases of claims that degraded workers hold under claim markers');
    }
    return true;
  }

  /**
   * After a database claim: if a degraded process holds a marker for the file (or has an outcome
   * for it not yet replayed), give the file back for a moment without running it.
   */
  async screen(claims: Claim[], opts: ClaimOptions, markedBefore: boolean): Promise<Claim[]> {
    const { now, onExpired } = opts;
    const { markers } = this.d;
    if (claims.length === 0) return claims;
    if (!markers.anyExist()) return markedBefore ? this.heldInDatabase(claims, opts) : claims;
    const keep: Claim[] = [];
    const lapsed: ExpiredClaim[] = [];
    const blocked: { c: Claim; until: number }[] = [];
    for (const c of claims) {
      if (!markers.mayHave(c.fileUrl)) {
        keep.push(c);
        continue;
      }
      let m: Marker | null;
      try {
        m = markers.current(c.fileUrl);
      } catch {
        blocked.push({ c, until: now + this.d.probeMs });
        continue;
      }
      const until = blockedUntil(m, c, now, this.d.probeMs);
      if (until === null && m?.state === 'claimed') {
        // A degraded worker's claim that lapsed (its process died or stopped): its handler may
        // still run, orphaned. The runner kills it as for an expired database lease, before
        // this claim's handler starts (a worker SIGKILLed just after its degraded claim left a
        // handler that overlapped the next run).
        lapsed.push({ fileUrl: c.fileUrl, version: m.version, attempt: m.attempt, token: m.token, workerId: m.workerId, handlerPid: m.handlerPid, status: 'failed' });
      }
      if (until !== null) blocked.push({ c, until });
      else if (m && m.version === c.version && m.attempt >= c.attempt) keep.push(await this.renumber(c, m.attempt + 1));
      else keep.push(c);
    }
    if (lapsed.length > 0) onExpired?.(lapsed);
    if (blocked.length > 0) {
      this.d.counters.deferredForMarkers += blocked.length;
      await this.defer(blocked);
      await this.reconcile();
    }
    return this.heldInDatabase(keep, opts);
  }

  private async reconcile(): Promise<void> {
    try {
      await this.d.reconcileOrphans();
    } catch (err) {
      this.d.log?.warn({ err }, 'could not replay journals left behind; will retry');
    }
  }

  /**
   * The claims the database still holds under their own tokens. A degraded process that comes
   * back carries its open claims into the database, over any claim made meanwhile, and then
   * removes its markers; a screen after that finds no marker, and only the database tells (two
   * runs of one file at once were seen in the 30-minute soak without this). The screen reads
   * markers first and the database second, and the carrier writes the database first and
   * removes its markers second, so one of the two reads sees it. Only while markers exist (or
   * existed when the claim began): one primary-key read per claim, and none in a plain normal mode.
   */
  private async heldInDatabase(claims: Claim[], opts: ClaimOptions): Promise<Claim[]> {
    const p = this.d.db.store;
    if (!p || claims.length === 0) return claims;
    const held: Claim[] = [];
    for (const c of claims) {
      const r = await p.get(c.fileUrl);
      if (r && r.status === 'processing' && r.claimToken === c.token) held.push(c);
      else this.d.log?.warn({ path: c.fileUrl, attempt: c.attempt, workerId: opts.workerId }, 'claim taken over by a claim carried back from degraded mode before it started; not run');
    }
    return held;
  }

  /**
   * A claim whose attempt number a degraded worker already used (its marker, lapsed or not yet
   * replayed, says so): the database read the row before that worker's journal reached it.
   * Renumbered before the handler starts, so that no (file, version, attempt) gets two outcomes.
   */
  private async renumber(c: Claim, attempt: number): Promise<Claim> {
    // Not written (locked again): the replay renumbers whichever outcome comes second (replay.ts).
    const n = await this.d.db.renumber(c.fileUrl, c.token, attempt);
    return n === null ? c : { ...c, attempt: n };
  }

  /** Put blocked claims back as they were (attempt not counted), due at `until`. */
  private async defer(blocked: { c: Claim; until: number }[]): Promise<void> {
    const p = this.d.db.store;
    if (!p) return;
    const nowIso = iso(this.d.clock());
    const written = await this.d.db.defer(blocked.map((b) => ({ fileUrl: b.c.fileUrl, token: b.c.token, until: b.until })), nowIso);
    if (!written) {
      // Could not write: give them back the ordinary way (with its retries), or let the lease run out.
      await p.release(blocked.map((b) => b.c), this.d.clock()).catch(() => {});
    }
  }
}

/** Until when a marker keeps a database claim from running; null: it does not. */
export function blockedUntil(m: Marker | null, c: Claim, now: number, probeMs: number): number | null {
  if (!m) return null;
  const soon = now + 2 * probeMs;
  // A marker of a newer version than the claim's: a degraded worker finished the claim's
  // version and saw the file change, and the database has heard of neither. Run now, the new
  // content would go under the old version's idempotency key. Wait for the journal instead,
  // whatever the marker's state.
  if (m.version > c.version) return soon;
  switch (m.state) {
    case 'claimed':
      return claimStands(m, now) ? Math.min(m.leaseExpiresAt, soon) : null;
    case 'completed':
    case 'dead':
      // An outcome for this version that the database does not have yet.
      return m.version >= c.version || m.fingerprint === c.fingerprint ? soon : null;
    case 'failed':
      return m.dueAt !== null && m.dueAt > now && m.version >= c.version ? Math.min(m.dueAt, soon) : null;
    case 'released':
      return null;
  }
}
