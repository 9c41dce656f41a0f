import type { StoreUnavailableError } from '../sqlite-errors.js';
import type { CheckpointStore, FileRecord } from '../types.js';
import type { Expiring } from './fencing.js';
import type { JournalEntry } from './journal.js';
import type { Looked } from './lookup.js';
import type { CarriedClaim, ReplayStats } from './replay.js';

/** A value now (SQLite: synchronous) or later (PostgreSQL: a round trip). */
export type Maybe<T> = T | Promise<T>;

export function isPromise<T>(v: Maybe<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** What a replay wrote: the counts, and the carried claims that were finished elsewhere meanwhile (lost). */
export interface ReplayOutcome {
  stats: ReplayStats;
  lostTokens: Set<string>;
}

/**
 * The database a FallbackStore stands in front of: everything the fallback needs from it
 * beyond the CheckpointStore calls themselves. Two kinds:
 * - SQLite (sqlite-primary.ts): every method is synchronous, so a recovery (probe, replay,
 *   switch back) still happens in one turn of the event loop, as it always did;
 * - PostgreSQL (../postgres/fallback-primary.ts): round trips, so the FallbackStore holds every
 *   call at a gate while a recovery runs.
 */
export interface FallbackPrimary {
  readonly kind: 'sqlite' | 'postgres';
  /** For messages: a file path, or `postgres host:port/db` (never a password). */
  readonly location: string;
  /** Where journals, markers and state files go unless configured (SQLite: `<db>.fallback`). */
  readonly defaultFallbackDir: string;
  /** The normal-mode store; null while not open. */
  readonly store: CheckpointStore | null;
  /** Open (or open again). Throws StoreUnavailableError when the database cannot be used. */
  open(): Maybe<void>;
  close(): Maybe<void>;
  /** Can the database take a write right now, without waiting? null: yes. Never throws for unavailability. */
  probe(): Maybe<StoreUnavailableError | null>;
  /** Degraded: reads must not wait (SQLite: busy timeout 0); back to normal: the usual waits. */
  setDegradedReads(on: boolean): void;
  /** What the database says about one file, or null when nothing can tell (then it is not handed out). */
  lookup(fileUrl: string, now: number): Maybe<Looked | null>;
  /** Claimable rows, oldest first, or null when they cannot be read. */
  claimable(nowIso: string, limit: number): Maybe<FileRecord[] | null>;
  /** Raise the attempt number of a claim the database just granted; true when it changed. */
  renumber(fileUrl: string, token: string, attempt: number): Maybe<number | null>;
  /** Put just-granted claims back, uncounted, due at `until`; false: could not write. */
  defer(blocked: readonly { fileUrl: string; token: string; until: number }[], nowIso: string): Maybe<boolean>;
  /** The claims the next lease sweep would take over (fencing.ts). */
  expiring(now: number, limit: number, skip: number): Maybe<Expiring[]>;
  /** Extend the leases of protected claims (fencing.ts); how many rows changed. */
  extendLeases(keep: readonly (Expiring & { until: number })[], now: number): Maybe<number>;
  /**
   * Apply journal entries, then write the carried claims as 'processing', all or nothing.
   * `onEntryError` decides about an entry that cannot be applied (a bug or a bad line): rethrow
   * to abort the whole replay, return to skip it.
   */
  replay(entries: readonly JournalEntry[], carried: readonly CarriedClaim[], now: number, onEntryError: (err: unknown, e: JournalEntry) => void): Maybe<ReplayOutcome>;
  /** A read while degraded (works under a SQLite write lock), or null. */
  readWhileDegraded<T>(fn: (s: CheckpointStore) => Promise<T>): Promise<T | null>;
  /** Forget per-episode state (SQLite: the private copy of a locked file). */
  endEpisode(): void;
  /** A file discovered through the database in normal mode (PostgreSQL: its state is known to the ledger). */
  noteDiscovered?(fileUrls: readonly string[]): void;
}

/**
 * Run a generator of steps, each yielding a Maybe: synchronously as long as every step is
 * synchronous (SQLite: the recovery stays in one turn of the event loop, and a constructor can
 * still throw), and from the first promise on asynchronously (PostgreSQL). A rejected promise
 * is thrown into the generator at its `yield`, so try/catch/finally work as in plain code.
 */
export function drive<T>(gen: Generator<unknown, T, unknown>): Maybe<T> {
  let input: unknown;
  for (;;) {
    const r = gen.next(input);
    if (r.done) return r.value;
    if (isPromise(r.value)) return driveAsync(gen, r.value);
    input = r.value;
  }
}

async function driveAsync<T>(gen: Generator<unknown, T, unknown>, first: Promise<unknown>): Promise<T> {
  let pending: unknown = first;
  for (;;) {
    let value: unknown;
    let failed = false;
    try {
      value = await pending;
    } catch (err) {
      failed = true;
      value = err;
    }
    // A failed step is thrown into the generator: its catch handles it, or it ends with it.
    const r = failed ? gen.throw(value) : gen.next(value);
    if (r.done) return r.value;
    pending = r.value;
  }
}
