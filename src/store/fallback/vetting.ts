import { expiryStatus, leaseExpiredError } from '../rules/transitions.js';
import { iso } from '../time.js';
import type { ChangePolicy, Claim, ExpiredClaim, FileRecord, RetryPolicy } from '../types.js';
import { type Marker, claimStands } from './claim-markers.js';
import type { JournalEntry } from './journal.js';
import type { Looked } from './lookup.js';

/**
 * Whether a claim taken from memory while degraded may really be handed out: pure decisions
 * over what the database (or its copy) says about the file and what another process's claim
 * marker says. The caller (degraded.ts) does the reading, the marker writes and the journal.
 *
 * A candidate's terms (version, attempt, retry count, fingerprint) are reconciled step by
 * step: each judgement returns the terms as they stand after it.
 */

export interface Terms {
  version: number;
  attempt: number;
  retryCount: number;
  fingerprint: string;
}

/** What the judgements need besides the candidate. */
export interface VetContext {
  /** The claim memory offered (its token and file). */
  candidate: Claim;
  /** Memory's record of the file (for a put-back or a terminal record). */
  record: FileRecord;
  now: number;
  retry: RetryPolicy;
  onChange: ChangePolicy | undefined;
  probeMs: number;
  /** The file on disk has this fingerprint now (one lstat; asked only when needed). */
  onDiskAsSeen: (fingerprint: string) => boolean;
}

/** Go on (with these terms), put back until a time (with this record), or settle as finished. */
export type Verdict = { go: Terms } | { wait: number; record: FileRecord } | { done: FileRecord };

export interface RowJudgement {
  verdict: Verdict;
  /** The row's claim is processing under a lease that ran out: that attempt ends. */
  expired: ExpiredClaim | null;
}

/** The database's row (or tombstone) for the file, against the candidate's terms. */
export function judgeRow(l: Looked, t: Terms, ctx: VetContext): RowJudgement {
  const { now, record: rec } = ctx;
  const go = (terms: Terms, expired: ExpiredClaim | null = null): RowJudgement => ({ verdict: { go: terms }, expired });
  const wait = (until: number): RowJudgement => ({ verdict: { wait: until, record: rec }, expired: null });
  const done = (row: FileRecord): RowJudgement => ({ verdict: { done: row }, expired: null });
  const r = l.row;
  if (!r) {
    if (l.tomb && (l.tomb.fingerprint === t.fingerprint || ctx.onChange === 'ignore')) {
      return done({ ...rec, status: 'completed', version: l.tomb.version, fingerprint: l.tomb.fingerprint });
    }
    return go(t);
  }
  if (r.status === 'completed' || r.status === 'dead') {
    if (r.fingerprint === t.fingerprint || ctx.onChange === 'ignore') return done(r);
    // Another fingerprint: a new version only if that content is what the folder holds now.
    // Otherwise ours is the older one (seen before the file was rewritten, then handled under
    // its newer content and moved by another worker): running it would record a stale version
    // dead as "vanished". The newer content, if still there, comes back from the watcher.
    if (!ctx.onDiskAsSeen(t.fingerprint)) return done(r);
    return go(t.version <= r.version ? { ...t, version: r.version + 1, attempt: 1, retryCount: 0 } : t);
  }
  const cur = r.version > t.version ? { ...t, version: r.version, fingerprint: r.fingerprint } : t;
  if (r.status === 'processing' && r.claimToken !== ctx.candidate.token) {
    const lease = r.dueAt ? Date.parse(r.dueAt) : 0;
    if (lease > now) return wait(lease);
    // Its worker died before we degraded: end that attempt (its orphaned handler must go first).
    const expired: ExpiredClaim = {
      fileUrl: r.fileUrl, version: r.version, attempt: r.attempts, token: r.claimToken ?? '', workerId: r.processedBy,
      handlerPid: r.handlerPid, status: expiryStatus(ctx.retry, r.retryCount),
    };
    return go({ ...cur, retryCount: Math.max(cur.retryCount, r.retryCount + 1), attempt: Math.max(cur.attempt, r.attempts + 1) }, expired);
  }
  if (r.status === 'failed' && r.dueAt && Date.parse(r.dueAt) > now) return wait(Date.parse(r.dueAt));
  return go({ ...cur, attempt: Math.max(cur.attempt, r.attempts + 1), retryCount: Math.max(cur.retryCount, r.retryCount) });
}

export interface MarkerJudgement {
  verdict: Verdict;
  /** The marker's owner died or stopped renewing: its attempt ends (taken over). */
  takeover: { expired: ExpiredClaim; entry: JournalEntry } | null;
}

/** Another process's claim marker for the file (read before ours is taken), against the terms. */
export function judgeMarker(cur: Marker, t: Terms, ctx: VetContext): MarkerJudgement {
  const { now, record: rec } = ctx;
  const stop = (verdict: Verdict): MarkerJudgement => ({ verdict, takeover: null });
  if (cur.state === 'claimed' && claimStands(cur, now)) return stop({ wait: Math.min(cur.leaseExpiresAt, now + 5 * ctx.probeMs), record: rec });
  const finished = cur.state === 'completed' || cur.state === 'dead';
  const asFinished = (): FileRecord => ({
    ...rec, status: cur.state === 'completed' ? 'completed' : 'dead', version: cur.version, attempts: cur.attempt, retryCount: cur.retryCount, dueAt: null,
  });
  if (finished && (cur.fingerprint === t.fingerprint || ctx.onChange === 'ignore')) return stop({ done: asFinished() });
  if (cur.state === 'failed' && cur.dueAt !== null && cur.dueAt > now && cur.fingerprint === t.fingerprint) {
    return stop({ wait: cur.dueAt, record: { ...rec, retryCount: cur.retryCount } });
  }
  // Finished under another fingerprint, and ours is not what the folder holds: stale (see judgeRow).
  if (finished && cur.version >= t.version && !ctx.onDiskAsSeen(t.fingerprint)) return stop({ done: asFinished() });
  let next = t;
  if (finished && cur.version >= t.version) {
    // Finished under another fingerprint (the outcome is not in the database yet, so the
    // database still shows the old version pending): the content changed since, and it is a
    // new version, not another attempt at the one that finished.
    next = { ...t, version: cur.version + 1, attempt: 1, retryCount: 0 };
  } else if (cur.version > t.version) next = { ...t, version: cur.version };
  if (!finished && cur.version === next.version) {
    next = { ...next, attempt: Math.max(next.attempt, cur.attempt + 1), retryCount: Math.max(next.retryCount, cur.retryCount) };
  }
  if (cur.state !== 'claimed') return { verdict: { go: next }, takeover: null };
  // Its owner died or stopped renewing: take it over, ending that attempt.
  const failures = cur.retryCount + 1;
  const status = expiryStatus(ctx.retry, cur.retryCount);
  const fileUrl = ctx.candidate.fileUrl;
  return {
    verdict: { go: { ...next, retryCount: Math.max(next.retryCount, failures) } },
    takeover: {
      expired: { fileUrl, version: cur.version, attempt: cur.attempt, token: cur.token, workerId: cur.workerId, handlerPid: cur.handlerPid, status },
      entry: {
        t: 'expired', status, dueAt: null, error: `${leaseExpiredError(cur.workerId)} (claim marker taken over)`,
        at: now, workerId: cur.workerId, fileUrl, fileType: cur.fileType, fileTimestamp: rec.fileTimestamp,
        fingerprint: cur.fingerprint, fileSize: rec.fileSize, version: cur.version, attempt: cur.attempt, retryCount: failures,
        token: cur.token, startedAt: iso(cur.at),
      },
    },
  };
}
