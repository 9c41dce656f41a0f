import { iso } from '../time.js';
import type { Claim, ClaimRef } from '../types.js';
import type { Marker, MarkerBody } from './claim-markers.js';
import type { ProcessIdentity } from './process-identity.js';
import type { CarriedClaim } from './replay.js';

/**
 * The claims this process handed out and has not finished, in either mode, and the records
 * made from one: its claim marker, the common part of its journal entries, and the claim as a
 * recovery carries it into the database.
 */

/** A claim this process handed out and has not finished, in either mode. */
export interface OpenClaim {
  claim: Claim;
  workerId: string;
  startedAt: number;
  handlerPid: number | null;
  /** Our current claim marker, while degraded. */
  marker: Marker | null;
  fileTimestamp: string;
  fileSize: number;
  /** Granted by the database (in normal mode), as opposed to from memory while degraded. */
  fromDatabase?: boolean;
}

/** Open claims by file; a ref finds its claim only under the same token. */
export class OpenClaims extends Map<string, OpenClaim> {
  of(ref: ClaimRef): OpenClaim | undefined {
    const o = this.get(ref.fileUrl);
    return o && o.claim.token === ref.token ? o : undefined;
  }

  untrack(ref: ClaimRef): void {
    if (this.of(ref)) this.delete(ref.fileUrl);
  }

  /** A claim the database granted (normal mode): open from `now`, its file's time and size not known here. */
  granted(c: Claim, workerId: string, now: number): OpenClaim {
    const o: OpenClaim = { claim: c, fromDatabase: true, workerId, startedAt: now, handlerPid: null, marker: null, fileTimestamp: iso(now), fileSize: 0 };
    this.set(c.fileUrl, o);
    return o;
  }

  /** After a database heartbeat: the claims it lost are no longer open, the others run to `now + leaseMs`. */
  renewed(refs: readonly ClaimRef[], lost: readonly ClaimRef[], leaseMs: number, now: number): void {
    const lostSet = new Set(lost.map((l) => `${l.fileUrl}\0${l.token}`));
    for (const r of refs) {
      const o = this.of(r);
      if (!o) continue;
      if (lostSet.has(`${r.fileUrl}\0${r.token}`)) this.delete(r.fileUrl);
      else o.claim = { ...o.claim, leaseExpiresAt: now + leaseMs };
    }
  }
}

/** Who writes a marker: this process, this store instance in it, and its worker id. */
export interface MarkerAuthor {
  owner: ProcessIdentity;
  /** Tells this store's markers from those of another store in the same process. */
  instance: string;
  workerId: string;
}

export function markerBody(by: MarkerAuthor, fileUrl: string, state: Marker['state'], extra: Partial<MarkerBody>, at: number): MarkerBody {
  return {
    fileUrl,
    state,
    owner: by.owner,
    instance: by.instance,
    workerId: by.workerId,
    token: '',
    fileType: '',
    fingerprint: '',
    version: 0,
    attempt: 0,
    retryCount: 0,
    leaseExpiresAt: 0,
    dueAt: null,
    handlerPid: null,
    at,
    ...extra,
  };
}

/** The marker of an open claim, in `state`. */
export function claimMarker(by: MarkerAuthor, o: OpenClaim, state: Marker['state'], at: number, extra: Partial<MarkerBody> = {}): MarkerBody {
  const c = o.claim;
  return markerBody(by, c.fileUrl, state, {
    token: c.token,
    fileType: c.fileType,
    fingerprint: c.fingerprint,
    version: c.version,
    attempt: c.attempt,
    retryCount: c.retryCount,
    leaseExpiresAt: c.leaseExpiresAt,
    handlerPid: o.handlerPid,
    ...extra,
  }, at);
}

/** What every journal entry about an open claim carries. */
export function entryBase(o: OpenClaim, at: number) {
  const c = o.claim;
  return {
    at,
    workerId: o.workerId,
    fileUrl: c.fileUrl,
    fileType: c.fileType,
    fileTimestamp: o.fileTimestamp,
    fingerprint: c.fingerprint,
    fileSize: o.fileSize,
    version: c.version,
    attempt: c.attempt,
    retryCount: c.retryCount,
    token: c.token,
    startedAt: iso(o.startedAt),
  };
}

/** An open claim as a recovery writes it into the database under its own token. */
export function carried(o: OpenClaim): CarriedClaim {
  return {
    fileUrl: o.claim.fileUrl,
    fileType: o.claim.fileType,
    fileTimestamp: o.fileTimestamp,
    fingerprint: o.claim.fingerprint,
    fileSize: o.fileSize,
    version: o.claim.version,
    attempt: o.claim.attempt,
    retryCount: o.claim.retryCount,
    token: o.claim.token,
    workerId: o.workerId,
    startedAt: iso(o.startedAt),
    leaseExpiresAt: o.claim.leaseExpiresAt,
    handlerPid: o.handlerPid,
  };
}
