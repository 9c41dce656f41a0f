import type { SqliteDatabase } from '../open-database.js';
import { iso } from '../time.js';
import { type Marker, claimStands } from './claim-markers.js';
import { isAlive } from './process-identity.js';

/**
 * Fencing between a degraded worker and the database's lease sweep.
 *
 * A claim granted by the database is held until its lease runs out (`leaseExpiresAt`, the last
 * expiry the database confirmed). A worker that goes degraded cannot renew that lease; it
 * carries the claim on under a claim marker instead. The two protections meet in time:
 *
 * - The degraded worker writes its marker (claim, or the outcome that ends it) and only THEN
 *   checks the clock: if it was still before the lease expiry, the marker existed while the
 *   claim was held. Otherwise the marker may have come too late, and the worker treats the
 *   claim as lost: it undoes the marker, reports `lost`, and the runner runs no after-action.
 * - A normal-mode worker, before its claim sweeps expired leases with its `now`, reads the
 *   markers at a time not earlier than that `now` (see NormalScreen.protect). A marker written
 *   before a lease ran out was therefore written before the sweep's `now`, and is seen: the
 *   sweeper extends that lease instead of taking the claim over.
 *
 * So a claim is never both taken over by the sweep and completed from a marker. Both sides
 * read the same clock: the database and its `.fallback` folder are on one local file system,
 * so every worker is on this host.
 */

/** True while the claim is still provably held at `now` (epoch ms, real time). */
export function stillHeld(leaseExpiresAt: number, now: number): boolean {
  return now < leaseExpiresAt;
}

/** A claim the database is about to sweep: processing under `token`, its lease run out. */
export interface Expiring {
  fileUrl: string;
  token: string;
}

/**
 * The claims the next sweep would take over at `now`: the sweep's own query (same literal
 * conditions as the partial index fc_leases, same order and batch as sqlite-statements.ts), after
 * `skip` rows. Normally empty, so protecting costs one index probe per claim and no marker reads.
 */
export function expiringClaims(db: SqliteDatabase, now: number, limit: number, skip = 0): Expiring[] {
  const rows = db
    .prepare(`SELECT file_url, claim_token FROM file_checkpoints WHERE status = 'processing' AND due_at <= ? ORDER BY due_at LIMIT ? OFFSET ?`)
    .all(iso(now), limit, skip) as { file_url: string; claim_token: string | null }[];
  return rows.filter((r) => r.claim_token !== null).map((r) => ({ fileUrl: r.file_url, token: r.claim_token! }));
}

/**
 * How long a marker protects the database claim under `token` at `now`, or null:
 * - a 'claimed' marker that stands (owner alive, its lease running): until the marker's lease;
 * - an outcome (completed, failed, dead, released) not yet in the database: for another
 *   `leaseMs`. A live owner replays its journal as soon as it can write; the outcome of an owner
 *   that is gone (`ownerGone`) is replayed by whoever finds it. Until then the sweep must not
 *   end the claim: a replayed outcome after a sweep's lease_expired would be skipped, and the
 *   file, already moved, would run again as "vanished". (A release swept as an expired lease
 *   would count a failure it never had.)
 */
export function protectedUntil(m: Marker | null, token: string, now: number, leaseMs: number): { until: number; ownerGone: boolean } | null {
  if (!m || m.token !== token) return null;
  if (m.state === 'claimed') return claimStands(m, now) ? { until: m.leaseExpiresAt, ownerGone: false } : null;
  return { until: now + leaseMs, ownerGone: !isAlive(m.owner) };
}

/**
 * Extend the database leases of protected claims (only rows still processing under the same
 * token, and only forwards), so that the sweep in the claim that follows leaves them alone.
 * Runs its own IMMEDIATE transaction. Returns how many rows it extended.
 */
export function extendLeases(db: SqliteDatabase, keep: readonly (Expiring & { until: number })[], now: number): number {
  if (keep.length === 0) return 0;
  const st = db.prepare(
    `UPDATE file_checkpoints SET due_at = ?, updated_at = ?
     WHERE file_url = ? AND claim_token = ? AND status = 'processing' AND due_at < ?`,
  );
  const nowIso = iso(now);
  let n = 0;
  db.transaction(() => {
    for (const p of keep) {
      const until = iso(p.until);
      n += st.run(until, nowIso, p.fileUrl, p.token, until).changes;
    }
  }).immediate();
  return n;
}
