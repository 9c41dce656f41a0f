/**
 * One look at one path that an event or a scan named: a marker (markers.ts), a data file to
 * track until it is stable (candidates.ts), or nothing to do. Every decision is made on our own
 * lstat, so an event is only ever a hint.
 */
import type fs from 'node:fs';
import { fingerprintOf } from '../file-identity.js';
import type { Candidates } from './candidates.js';
import type { ConsiderResult, FolderState } from './folder-state.js';
import type { Markers } from './markers.js';

export class PathLook {
  constructor(
    private readonly candidates: Candidates,
    private readonly markers: Markers,
  ) {}

  /**
   * Look at `p`. 'full' means the tracker had no room: the caller drops it (an event) or waits
   * for room (a scan). `known`: an lstat the event source just took (null: nothing there).
   */
  async consider(f: FolderState, p: string, known?: fs.Stats | null): Promise<ConsiderResult> {
    const c = this.candidates;
    if (!p.startsWith(`${f.root}/`)) return 'ok';
    if (known === null) {
      c.forgetGone(p); // the event source's lstat found nothing there
      return 'ok';
    }
    const rel = p.slice(f.root.length + 1);
    const target = f.filter.markerTarget(rel);
    if (target !== null) return this.markers.onMarker(f, `${f.root}/${target}`);
    if (!f.filter.isDataFile(rel)) return 'ok';
    const st = known ?? (await c.lstatOrNull(f, p));
    if (st === null || !c.isRegularFile(p, st)) return 'ok';
    const fp = fingerprintOf(st);
    if (c.isKnown(p, fp)) return 'ok';
    // Stable and waiting for its marker, unchanged: nothing to do until the marker appears.
    if (c.awaitingFingerprint(p) === fp) return 'ok';
    c.stopAwaiting(p);
    return c.track(f, p, st);
  }
}
