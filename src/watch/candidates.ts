/**
 * The candidates: files seen but not handed on yet, waiting for their stable period (the
 * stability tracker) or, found stable, for their ready marker. Both are bounded by maxTracked.
 * With them, what every look at a path asks first: is it still there, a regular file, and a
 * version not already handed or queued?
 */
import type fs from 'node:fs';
import type { Logger } from 'pino';
import { type ConsiderResult, type FolderState, isErrno, LOG_ONCE_CAP, lstatIn } from './folder-state.js';
import type { HandedFingerprints } from './handed-fingerprints.js';
import type { Handoff } from './handoff.js';
import type { StabilityTracker } from './readiness.js';
import type { Room } from './room.js';

export interface CandidatesOptions {
  log: Logger;
  tracker: StabilityTracker<number>;
  maxTracked: number;
  handed: HandedFingerprints;
  handoff: Handoff;
  room: Room;
}

export class Candidates {
  readonly tracker: StabilityTracker<number>;
  /** Stable files whose marker is missing: path -> fingerprint when found stable. */
  private readonly awaiting = new Map<string, string>();
  private readonly warnedPaths = new Set<string>();

  constructor(private readonly o: CandidatesOptions) {
    this.tracker = o.tracker;
  }

  get awaitingMarker(): number {
    return this.awaiting.size;
  }

  /** The fingerprint `p` had when found stable, while it waits for its marker. */
  awaitingFingerprint(p: string): string | undefined {
    return this.awaiting.get(p);
  }

  /**
   * Bounded like the tracker: the oldest waiter is forgotten; its marker's event (or the
   * rescan that sees the marker) tracks it again.
   */
  awaitMarker(p: string, fp: string): void {
    if (this.awaiting.size >= this.o.maxTracked) {
      const oldest = this.awaiting.keys().next();
      if (oldest.done !== true) this.awaiting.delete(oldest.value);
    }
    this.awaiting.set(p, fp);
  }

  stopAwaiting(p: string): void {
    this.awaiting.delete(p);
  }

  /** This version of `p` was handed on already, or is queued to be. */
  isKnown(p: string, fp: string): boolean {
    return this.o.handed.isHanded(p, fp) || this.o.handoff.queuedFingerprint(p) === fp;
  }

  /** Start (or keep) its stable period; 'full' when there is no room. */
  track(f: FolderState, p: string, st: fs.Stats): ConsiderResult {
    return this.tracker.observe(p, st, f.index, this.o.handoff.size) === 'full' ? 'full' : 'ok';
  }

  /** No longer waiting for stability (ready by other means, or not a file). */
  untrack(p: string): void {
    if (this.tracker.forget(p)) this.o.room.release();
  }

  /** `p` is gone (lstat said ENOENT): forget everything about it. */
  forgetGone(p: string): void {
    if (this.tracker.forget(p)) {
      this.o.log.debug({ path: p }, 'file vanished before it was stable; dropped');
      this.o.room.release();
    }
    this.awaiting.delete(p);
    this.o.handed.forget(p);
  }

  /** A watched folder went away: its files would only vanish one by one. */
  forgetUnder(prefix: string): void {
    const forgotten = this.tracker.forgetUnder(prefix);
    for (const p of this.awaiting.keys()) if (p.startsWith(prefix)) this.awaiting.delete(p);
    if (forgotten > 0) this.o.room.release();
  }

  isRegularFile(p: string, st: fs.Stats): boolean {
    if (st.isFile()) return true;
    if (st.isSymbolicLink()) {
      this.o.log.debug({ path: p }, 'symlink in a watched folder is not a data file; skipped');
    } else if (!st.isDirectory()) {
      // Never opened: opening a FIFO for reading blocks until a writer comes.
      this.o.log.debug({ path: p }, 'not a regular file (FIFO, socket or device); skipped');
    }
    this.untrack(p);
    return false;
  }

  async lstatOrNull(f: FolderState, p: string): Promise<fs.Stats | null> {
    try {
      return await lstatIn(f, p);
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) {
        this.forgetGone(p);
        return null;
      }
      this.warnOnce(p, err, 'cannot stat file; skipped');
      return null;
    }
  }

  warnOnce(p: string, err: unknown, msg: string): void {
    if (this.warnedPaths.has(p)) return;
    if (this.warnedPaths.size < LOG_ONCE_CAP) this.warnedPaths.add(p);
    this.o.log.warn({ path: p, err }, msg);
  }
}
