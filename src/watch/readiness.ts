/**
 * Readiness: a file is handed on only once it is completely written. "Complete" means two
 * stats at least stableMs apart show the same size, mtime and inode, and, for a folder with a
 * ready marker, that the marker file exists beside it.
 *
 * We do this ourselves instead of chokidar's awaitWriteFinish because that does not apply to
 * files present at start-up (docs/stack-behaviour.md) and keeps a timer and a poll per file.
 */
import { sameVersion, type StatLike } from '../file-identity.js';

export type Verdict =
  /** Unchanged for stableMs (and the marker is there when one is required): hand it on. */
  | 'ready'
  /** Size, mtime or inode moved: start a new stable period from `cur`. */
  | 'changed'
  /** The two stats are less than stableMs apart: wait for the deadline. */
  | 'too-soon'
  /** Stable, but the folder wants a marker file and there is none yet. */
  | 'awaiting-marker';

export interface Observation {
  /** The first stat of the stable period, and when (clock ms) it was taken. */
  prev: StatLike;
  prevAt: number;
  cur: StatLike;
  curAt: number;
  stableMs: number;
  markerRequired: boolean;
  markerPresent: boolean;
}

/** The readiness rule on its own, so that it can be tested without files or clocks. */
export function judge(o: Observation): Verdict {
  if (!sameVersion(o.prev, o.cur)) return 'changed';
  if (o.curAt - o.prevAt < o.stableMs) return 'too-soon';
  if (o.markerRequired && !o.markerPresent) return 'awaiting-marker';
  return 'ready';
}

/** True when `judge` says ready. */
export function isReady(o: Observation): boolean {
  return judge(o) === 'ready';
}

export interface TrackedEntry<M> {
  /** The stat that started the stable period. */
  readonly stat: StatLike;
  /** Clock ms when `stat` was taken. */
  readonly at: number;
  /** Clock ms when the file can first be judged: at + stableMs. */
  readonly deadline: number;
  readonly meta: M;
}

export type ObserveResult = 'tracking' | 'unchanged' | 'full';

export interface TrackerOptions {
  stableMs: number;
  /** Most files waiting for stability at once; observe() says 'full' beyond it. */
  capacity: number;
  /** Monotonic clock in ms. */
  now: () => number;
  /** Called (and awaited) when the earliest deadline has passed; the tracker re-arms after. */
  onDue: () => Promise<void>;
  /** Called when onDue throws; the tracker keeps going. */
  onError: (err: unknown) => void;
}

/**
 * Files waiting for their stable period to end, with ONE timer for the earliest deadline.
 *
 * Every deadline is `stat time + stableMs` with the same stableMs, so deadlines grow in
 * insertion order: a Map (which iterates in insertion order) is already a priority queue, and a
 * re-armed file is deleted and re-inserted at the tail. Insert, re-arm, forget and "earliest
 * deadline" are all O(1); 100k tracked files cost one Map, not 100k timers.
 */
export class StabilityTracker<M> {
  private readonly entries = new Map<string, TrackedEntry<M>>();
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private busy = false;
  private closed = false;

  constructor(private readonly opts: TrackerOptions) {}

  get size(): number {
    return this.entries.size;
  }

  get capacity(): number {
    return this.opts.capacity;
  }

  has(path: string): boolean {
    return this.entries.has(path);
  }

  get(path: string): TrackedEntry<M> | undefined {
    return this.entries.get(path);
  }

  /**
   * Record a stat of `path`. A tracked file whose stat did not move keeps its deadline (a
   * rescan or a duplicate event must not postpone it); one that moved starts over.
   * `reserve` is how many slots beyond the tracked files are in use elsewhere (files ready
   * but not yet accepted by the sink), so that tracked + reserve stays within capacity.
   */
  observe(path: string, stat: StatLike, meta: M, reserve = 0): ObserveResult {
    const old = this.entries.get(path);
    if (old !== undefined) {
      if (sameVersion(old.stat, stat)) return 'unchanged';
      this.entries.delete(path);
    } else if (this.entries.size + reserve >= this.opts.capacity) {
      return 'full';
    }
    const at = this.opts.now();
    this.entries.set(path, { stat, at, deadline: at + this.opts.stableMs, meta });
    this.schedule();
    return 'tracking';
  }

  /** Start a new stable period for `path` from `stat`, if `entry` is still the current one. */
  rearm(path: string, entry: TrackedEntry<M>, stat: StatLike): void {
    if (this.entries.get(path) !== entry) return;
    this.entries.delete(path);
    const at = this.opts.now();
    this.entries.set(path, { stat, at, deadline: at + this.opts.stableMs, meta: entry.meta });
    this.schedule();
  }

  /** Stop tracking `path` (only if `entry` is still current, when given). */
  forget(path: string, entry?: TrackedEntry<M>): boolean {
    if (entry !== undefined && this.entries.get(path) !== entry) return false;
    return this.entries.delete(path);
  }

  /** True when `entry` is still what the tracker holds for `path` (no newer stat came in). */
  isCurrent(path: string, entry: TrackedEntry<M>): boolean {
    return this.entries.get(path) === entry;
  }

  /**
   * Up to `limit` entries whose deadline has passed, earliest first. They stay tracked until
   * the caller forgets or re-arms them, so events meanwhile still see them; the caller must do
   * one or the other with each, or the timer fires again at once.
   * An entry whose deadline lies more than stableMs ahead can only come from a clock that
   * stepped back; it is treated as due rather than left to block every entry behind it.
   */
  due(limit: number): Array<[string, TrackedEntry<M>]> {
    const now = this.opts.now();
    const out: Array<[string, TrackedEntry<M>]> = [];
    for (const [path, entry] of this.entries) {
      if (out.length >= limit) break;
      if (entry.deadline > now && entry.deadline - now <= this.opts.stableMs) break;
      out.push([path, entry]);
    }
    return out;
  }

  /** Forget everything whose path starts with `prefix` (a watched folder that went away). */
  forgetUnder(prefix: string): number {
    let n = 0;
    for (const path of this.entries.keys()) {
      if (path.startsWith(prefix)) {
        this.entries.delete(path);
        n++;
      }
    }
    return n;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.entries.clear();
  }

  /** Arm the one timer for the earliest deadline (the Map's first entry). */
  private schedule(): void {
    if (this.busy || this.closed) return;
    const first = this.entries.values().next();
    if (first.done === true) {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      return;
    }
    const deadline = first.value.deadline;
    if (this.timer !== null && this.timerAt <= deadline) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = deadline;
    const delay = Math.min(Math.max(0, deadline - this.opts.now()), this.opts.stableMs);
    this.timer = setTimeout(() => void this.fire(), delay);
  }

  private async fire(): Promise<void> {
    this.timer = null;
    this.busy = true;
    try {
      await this.opts.onDue();
    } catch (err) {
      this.opts.onError(err);
    } finally {
      this.busy = false;
      this.schedule();
    }
  }
}
