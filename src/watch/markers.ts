/**
 * Ready markers: in a folder with `readyMarker: ".done"`, `x.csv` is handed on only once it is
 * complete AND `x.csv.done` exists beside it. The file may be complete first (it waits in
 * Candidates' awaiting list) or the marker may come first (the file is tracked as usual and
 * its stability check sees the marker).
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { fingerprintOf } from '../file-identity.js';
import type { Candidates } from './candidates.js';
import { type ConsiderResult, exists, type FolderState, markerOf } from './folder-state.js';
import type { Handoff } from './handoff.js';
import type { KernelReadyMode } from './kernel-readiness.js';

export class Markers {
  constructor(
    private readonly log: Logger,
    private readonly candidates: Candidates,
    private readonly handoff: Handoff,
  ) {}

  /** A marker appeared (or a scan saw one): its data file may be ready now. */
  async onMarker(f: FolderState, dataPath: string): Promise<ConsiderResult> {
    const c = this.candidates;
    const fp = c.awaitingFingerprint(dataPath);
    if (fp === undefined) {
      // Not known to be stable yet: track it (if already tracked, its check will see the marker).
      if (c.tracker.has(dataPath)) return 'ok';
      const st = await c.lstatOrNull(f, dataPath);
      if (st === null || !c.isRegularFile(dataPath, st)) return 'ok';
      if (c.isKnown(dataPath, fingerprintOf(st))) return 'ok';
      return c.track(f, dataPath, st);
    }
    const st = await c.lstatOrNull(f, dataPath);
    if (st === null || !st.isFile()) {
      c.stopAwaiting(dataPath);
      return 'ok';
    }
    if (c.awaitingFingerprint(dataPath) !== fp) return 'ok'; // changed meanwhile
    c.stopAwaiting(dataPath);
    if (fingerprintOf(st) === fp) {
      // Found stable before, unchanged since, and now marked: ready without another wait.
      this.handoff.enqueue(f, dataPath, st);
      return 'ok';
    }
    return c.track(f, dataPath, st);
  }

  /** Found stable (already untracked) while its marker is missing: wait for the marker. */
  async stableWithoutMarker(f: FolderState, p: string, st: fs.Stats, marker: string): Promise<void> {
    this.candidates.awaitMarker(p, fingerprintOf(st));
    this.log.debug({ path: p, marker: p + marker }, 'file is stable; waiting for its ready marker');
    // The marker may have appeared between our look and now, and its event found the file
    // still tracked: look once more so that it is not left waiting for a rescan.
    if (await exists(p + marker)) await this.onMarker(f, p);
  }

  /**
   * Complete by a kernel event: true when the folder wants a marker that is not there yet (the
   * file then waits for it). In line: kernel events come from local folders only.
   */
  waitsAfterKernel(f: FolderState, p: string, fp: string, mode: KernelReadyMode): boolean {
    const marker = markerOf(f);
    if (marker !== null && !fs.existsSync(p + marker)) {
      this.candidates.awaitMarker(p, fp);
      this.log.debug({ path: p, readiness: mode, marker: p + marker }, 'file is complete; waiting for its ready marker');
      return true;
    }
    this.candidates.stopAwaiting(p);
    return false;
  }
}
