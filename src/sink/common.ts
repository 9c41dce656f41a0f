/**
 * What the SQLite and the PostgreSQL sink share: the run a write belongs to, the result of
 * `once()`, and the checks that turn a misuse into an error before anything is committed.
 *
 * The idea of a sink: the rows a run writes and the run's idempotency key are committed in one
 * transaction of the sink database. The key is the primary key of the table ckpt keeps there
 * (`ckpt_applied`), so a second run of the same version of the same file (after a crash, or by
 * a worker whose claim was taken over) either finds the key and writes nothing, or waits for
 * the first one's transaction and then finds it.
 */
import { type RunStats, checkStats } from '../run/stats-line.js';

/** The table ckpt creates in a sink database, unless told another name. */
export const DEFAULT_SINK_TABLE = 'ckpt_applied';

/** A table name ckpt accepts: letters, digits and _ (it is put into SQL, quoted). */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * The run a write belongs to. A module handler's `ctx` is one; a program embedding ckpt builds
 * it from its Claim (`fileUrl`, `version`, `idempotencyKey`, `attempt`).
 */
export interface SinkRun {
  idempotencyKey: string;
  fileUrl: string;
  version: number;
  attempt?: number;
  workerId?: string;
  /** When aborted (lease lost, timeout, shutdown), nothing is committed. */
  signal?: AbortSignal;
}

/** What `once()` returns: the stats to return from the handler, and whether this run applied them. */
export interface SinkResult extends RunStats {
  /** True when the key was already in the sink: this run wrote nothing, the stats are the first run's. */
  alreadyApplied: boolean;
  /** When the run that wrote the rows committed (ISO 8601 UTC). */
  appliedAt: string;
  /** The attempt that wrote the rows (null when the writer did not say). */
  appliedByAttempt: number | null;
}

/** One row of the sink's `ckpt_applied` table. */
export interface AppliedRecord {
  idempotencyKey: string;
  fileUrl: string;
  version: number;
  attempt: number | null;
  workerId: string | null;
  appliedAt: string;
  stats: RunStats;
}

export function checkTableName(name: string): string {
  if (!TABLE_NAME.test(name)) {
    throw new Error(`invalid sink table name ${JSON.stringify(name)}: letters, digits and _ only, at most 63, not starting with a digit`);
  }
  return `"${name}"`;
}

/** Throws a TypeError naming the first field of `run` that is missing or wrong. */
export function checkRun(run: SinkRun, write: unknown): void {
  if (typeof run !== 'object' || run === null) throw new TypeError('sink.once(ctx, write): ctx must be the handler context (or {idempotencyKey, fileUrl, version})');
  if (typeof run.idempotencyKey !== 'string' || run.idempotencyKey === '') throw new TypeError('sink.once: ctx.idempotencyKey must be a non-empty string');
  if (typeof run.fileUrl !== 'string' || run.fileUrl === '') throw new TypeError('sink.once: ctx.fileUrl must be a non-empty string');
  if (!Number.isSafeInteger(run.version)) throw new TypeError('sink.once: ctx.version must be an integer');
  if (typeof write !== 'function') throw new TypeError('sink.once(ctx, write): write must be a function');
}

/** The stats the write function returned, or a TypeError (the transaction is rolled back). */
export function statsFrom(value: unknown): RunStats {
  const checked = checkStats(value);
  if ('stats' in checked) return checked.stats;
  throw new TypeError(`sink.once: the write function must return the run's stats {total, filtered, persisted}: ${checked.problem}`);
}

/** Thrown instead of committing when the run's signal was aborted (its lease is gone). */
export function abortedError(run: SinkRun): Error {
  const reason = run.signal?.reason;
  const why = reason instanceof Error ? reason.message : reason === undefined ? 'no reason given' : String(reason);
  return new Error(`sink.once: not committed, the run was aborted (${why})`, { cause: reason });
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** Parses the stats column; a row written by hand with no stats reads as zero counts. */
export function parseStats(text: unknown): RunStats {
  if (typeof text === 'object' && text !== null) return statsOrZero(text);
  if (typeof text !== 'string') return { total: 0, filtered: 0, persisted: 0 };
  try {
    return statsOrZero(JSON.parse(text));
  } catch {
    return { total: 0, filtered: 0, persisted: 0 };
  }
}

function statsOrZero(v: unknown): RunStats {
  const checked = checkStats(v);
  return 'stats' in checked ? checked.stats : { total: 0, filtered: 0, persisted: 0 };
}

/**
 * A handle that only works while its transaction is open. The user's function gets one; once
 * `once()` has committed or rolled back, every use throws, so a write that escaped the
 * transaction (after an `await` the SQLite variant cannot wait for, or from a stray callback)
 * fails loudly instead of landing outside the transaction, unguarded by the key.
 */
export class Liveness {
  private open = true;
  constructor(private readonly what: string) {}
  check(): void {
    if (!this.open) throw new Error(`${this.what} used after its transaction ended: every write must happen inside the write function, before it returns`);
  }
  end(): void {
    this.open = false;
  }
}
