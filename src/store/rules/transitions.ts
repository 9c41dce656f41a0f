/**
 * The state rules of a file's row, written once. Every store executes them in its own way
 * (SQLite: one conditional UPDATE per row inside an IMMEDIATE transaction; PostgreSQL: one
 * set-based statement per batch; memory: plain objects), and the fallback's replay and salvage
 * roll degraded-mode outcomes forward by the same rules. What a backend may not do is decide a
 * rule on its own: the table says which transitions exist and what guards them, the functions
 * below decide every value a transition records (status, counters, due time, error, label).
 *
 * test/contract/store-contract.ts walks TRANSITIONS on every store (SQLite, memory, fallback,
 * PostgreSQL): each row is driven, and each status a row does not name is refused.
 */
import { backoffDelayMs, budgetSpent } from '../retry-policy.js';
import type { ChangePolicy, RetryPolicy, Status } from '../types.js';

/** Where a row can be: a status, not there at all, or purged (a tombstone remembers it). */
export type Place = Status | 'absent' | 'tombstone';

/** The store operation that makes a transition. */
export type Operation = 'discover' | 'claim' | 'sweep' | 'complete' | 'fail' | 'release' | 'requeue' | 'reversion' | 'purge' | 'revive' | 'expire';

export interface Transition {
  op: Operation;
  from: readonly Place[];
  to: readonly Place[];
  /** What must hold for the write to happen; a write whose guard fails changes nothing. */
  guard: string;
  /** What the transition writes besides the status. */
  records: string;
}

/**
 * Every legal transition. Anything not listed is refused by its guard (a token write on a row
 * that is not processing is `lost`, a requeue of a completed row counts 0, ...).
 */
export const TRANSITIONS: readonly Transition[] = Object.freeze([
  { op: 'discover', from: ['absent', 'tombstone'], to: ['pending'], guard: 'primary key; a tombstone keeps the same content out (any content under policy ignore)', records: "version 1, or the tombstone's + 1; due now" },
  { op: 'claim', from: ['pending', 'failed'], to: ['processing'], guard: "status IN ('pending','failed') AND due_at <= now", records: 'a new claim token, the worker, attempt + 1, due = lease end' },
  { op: 'sweep', from: ['processing'], to: ['failed', 'dead'], guard: "status = 'processing' AND due_at <= now (lease expired), at most SWEEP_BATCH per claim", records: "a counted failure (planFailure), 'lease_expired' in the history" },
  { op: 'complete', from: ['processing'], to: ['completed'], guard: 'claim token', records: 'record counts, the after-action label, the history row' },
  { op: 'fail', from: ['processing'], to: ['failed', 'dead'], guard: 'claim token', records: 'a counted failure (planFailure), the error, the history row' },
  { op: 'release', from: ['processing'], to: ['pending'], guard: 'claim token', records: "due now, no failure counted, 'released' in the history" },
  { op: 'requeue', from: ['failed', 'dead'], to: ['pending'], guard: 'status (operator)', records: 'a fresh retry budget, no after-action, a requeue event in the history' },
  { op: 'reversion', from: ['completed', 'dead'], to: ['pending'], guard: 'discover: status, a changed fingerprint, policy reprocess', records: 'version + 1, counters reset' },
  { op: 'purge', from: ['completed', 'dead'], to: ['tombstone'], guard: 'status, age', records: 'the row and its history deleted, a tombstone (fingerprint, version, status)' },
  { op: 'revive', from: ['tombstone'], to: ['pending'], guard: 'a tombstone and no row (operator)', records: "version = tombstone's + 1, a requeue event in the history" },
  { op: 'expire', from: ['tombstone'], to: ['absent'], guard: 'age (retention.tombstones)', records: 'the tombstone deleted: the path is new to the ledger again' },
] satisfies Transition[]);

/**
 * Rows taken per expired-lease sweep, in every store and in the fallback's protection of marked
 * claims (which must read the same batches). Expiry is rare (a worker died); the bound keeps one
 * claim transaction short even after a crash of a worker that held thousands of files.
 */
export const SWEEP_BATCH = 256;

/** What a counted failure does, decided before anything changes. */
export interface FailPlan {
  status: 'failed' | 'dead';
  retryCount: number;
  /** Epoch ms of the next attempt; null when dead. */
  dueAt: number | null;
}

/**
 * A counted failure of a claim whose row has `retryCount` failures so far: dead when permanent
 * or when the budget is spent, else failed and due after a jittered backoff. `random` is called
 * once, and only for a failed row (the contract pins it, so the order of calls matters).
 */
export function planFailure(retry: RetryPolicy, retryCount: number, permanent: boolean, now: number, random: () => number): FailPlan {
  const failures = retryCount + 1;
  const dead = permanent || budgetSpent(retry, failures);
  return { status: dead ? 'dead' : 'failed', retryCount: failures, dueAt: dead ? null : now + backoffDelayMs(retry, failures, random) };
}

/** The status an expired lease leads to (the sweep tells onExpired before it plans the due time). */
export function expiryStatus(retry: RetryPolicy, retryCount: number): 'failed' | 'dead' {
  return budgetSpent(retry, retryCount + 1) ? 'dead' : 'failed';
}

/** The error an expired lease records. */
export function leaseExpiredError(workerId: string | null): string {
  return `lease expired: worker ${workerId ?? '?'} stopped renewing its claim`;
}

/** The history outcome of fail(): the caller's reason, else 'dead' for a permanent failure, else 'failed'. */
export function failureOutcome(reason: string | undefined, permanent: boolean, status: FailPlan['status']): string {
  return reason ?? (status === 'dead' && permanent ? 'dead' : 'failed');
}

/** The after-action recorded with a failure: the one planned for a dead file, none for a retry. */
export function failureAfterAction(status: FailPlan['status'], deadAfterAction: string | null | undefined): string | null {
  return status === 'dead' ? (deadAfterAction ?? null) : null;
}

/** completed_at of a failure: the end, when it is final. */
export function failureCompletedAt(status: FailPlan['status'], nowIso: string): string | null {
  return status === 'dead' ? nowIso : null;
}

/**
 * The status a settling attempt left its row in, read back from its history row alone (salvage
 * rolls a row forward by it when the row's newest copy was lost): completed; dead for an outcome
 * 'dead' or a failure that recorded an after-action (failureAfterAction records one only for a
 * dead file); else failed.
 */
export function statusAfterAttempt(outcome: string, afterAction: string | null): 'completed' | FailPlan['status'] {
  if (outcome === 'completed') return 'completed';
  return outcome === 'dead' || afterAction !== null ? 'dead' : 'failed';
}

/** What discovery knows about a path before it writes: its row, else its tombstone, else nothing. */
export type Known = { row: { status: Status; fingerprint: string } } | { tombstone: { fingerprint: string; version: number } } | null;

/** What discovery does with a file at a path (the discover and reversion rows of TRANSITIONS). */
export type DiscoverStep =
  | { step: 'insert'; version: number; liftsTombstone: boolean }
  | { step: 'tombstoned' }
  | { step: 'reversion' }
  /** Pending or failed, not run yet in this shape: the next run reads the new content anyway. */
  | { step: 'refresh' }
  /** Same content; or processing: the runner re-discovers the file after its outcome if it changed meanwhile. */
  | { step: 'unchanged' };

/** Decides discovery's transition for one file; the store then writes it, guarded again in its write. */
export function discoverStep(known: Known, fingerprint: string, policy: ChangePolicy): DiscoverStep {
  if (known === null) return { step: 'insert', version: 1, liftsTombstone: false };
  if ('tombstone' in known) {
    const t = known.tombstone;
    return t.fingerprint === fingerprint || policy === 'ignore' ? { step: 'tombstoned' } : { step: 'insert', version: t.version + 1, liftsTombstone: true };
  }
  const r = known.row;
  if (r.fingerprint === fingerprint) return { step: 'unchanged' };
  if (r.status === 'completed' || r.status === 'dead') return policy === 'reprocess' ? { step: 'reversion' } : { step: 'unchanged' };
  return r.status === 'pending' || r.status === 'failed' ? { step: 'refresh' } : { step: 'unchanged' };
}
