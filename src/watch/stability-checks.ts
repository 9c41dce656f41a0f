/**
 * Stability checks: the tracker's one timer calls run() when the earliest deadline passed. Each
 * due file gets a second lstat; judge() (readiness.ts) says whether it is ready, changed, or
 * waiting for its marker.
 */
import type fs from 'node:fs';
import type { Logger } from 'pino';
import type { Candidates } from './candidates.js';
import { exists, type FolderState, isErrno, lstatIn, markerOf, STAT_BATCH } from './folder-state.js';
import type { Handoff } from './handoff.js';
import type { KernelReadiness } from './kernel-readiness.js';
import type { Markers } from './markers.js';
import { judge, type TrackedEntry, type Verdict } from './readiness.js';
import type { Room } from './room.js';
import type { WatchSettings } from './watcher-options.js';

export interface StabilityChecksOptions {
  log: Logger;
  settings: WatchSettings;
  folders: readonly FolderState[];
  candidates: Candidates;
  markers: Markers;
  handoff: Handoff;
  room: Room;
  kernel: KernelReadiness;
  closed: () => boolean;
}

export class StabilityChecks {
  constructor(private readonly o: StabilityChecksOptions) {}

  async run(): Promise<void> {
    const { tracker } = this.o.candidates;
    while (!this.o.closed()) {
      const due = tracker.due(STAT_BATCH);
      if (due.length === 0) return;
      // Files found ready by this round go to the sink together, not one call per stat reply.
      this.o.handoff.hold();
      await Promise.all(
        due.map(([p, e]) =>
          this.checkOne(p, e).catch((err: unknown) => {
            this.o.log.error({ path: p, err }, 'stability check failed; dropped until the next event or rescan');
          }),
        ),
      );
      // Every due entry must leave the head, or the loop would spin on it.
      for (const [p, e] of due) tracker.forget(p, e);
      this.o.handoff.release();
      this.o.room.release();
    }
  }

  private async checkOne(p: string, e: TrackedEntry<number>): Promise<void> {
    const f = this.o.folders[e.meta];
    if (f === undefined) return;
    const { tracker } = this.o.candidates;
    let st: fs.Stats;
    try {
      st = await lstatIn(f, p);
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
      if (tracker.isCurrent(p, e)) this.o.candidates.forgetGone(p);
      return;
    }
    if (this.o.closed() || !tracker.isCurrent(p, e)) return;
    if (!st.isFile()) return;
    const marker = markerOf(f);
    const markerPresent = marker !== null && (await exists(p + marker));
    if (this.o.closed() || !tracker.isCurrent(p, e)) return;
    const verdict = judge({
      prev: e.stat,
      prevAt: e.at,
      cur: st,
      curAt: this.o.settings.now(),
      stableMs: this.o.settings.stableMs,
      markerRequired: marker !== null,
      markerPresent,
    });
    // Stable by its stats, but the kernel saw writes and no close since: the writer only paused.
    if ((verdict === 'ready' || verdict === 'awaiting-marker') && f.readiness === 'kernel-events' && this.o.kernel.writing(p)) {
      this.o.log.debug({ path: p }, 'file unchanged for stableMs but still open for writing; waiting for its close');
      tracker.rearm(p, e, st);
      return;
    }
    await this.act(f, p, e, st, verdict, marker);
  }

  private async act(f: FolderState, p: string, e: TrackedEntry<number>, st: fs.Stats, verdict: Verdict, marker: string | null): Promise<void> {
    const { tracker } = this.o.candidates;
    switch (verdict) {
      case 'changed':
      case 'too-soon': // only with a clock that stepped back: start the period over
        tracker.rearm(p, e, st);
        return;
      case 'awaiting-marker':
        tracker.forget(p, e);
        // judge() says awaiting-marker only when a marker is required.
        if (marker !== null) await this.o.markers.stableWithoutMarker(f, p, st, marker);
        return;
      case 'ready':
        tracker.forget(p, e);
        this.o.log.debug({ path: p, readiness: 'stable' }, 'file ready');
        this.o.handoff.enqueue(f, p, st);
        return;
    }
  }
}
