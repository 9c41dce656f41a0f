import os from 'node:os';
import path from 'node:path';
import { ClaimMarkers, type MarkerState, claimStands } from './claim-markers.js';
import { listJournals, ownerOf, readJournal } from './journal.js';
import { type ProcessIdentity, isAlive } from './process-identity.js';
import { SNAPSHOT_NAME } from './snapshot.js';
import { type FallbackState, fallbackDirForConfig, readFallbackStates } from './state-files.js';

/**
 * A read-only view of a fallback folder, for `ckpt doctor` and `ckpt status`: what the running
 * processes say about their mode, the journals and claim markers waiting to be replayed, and a
 * salvage in progress. It never writes to the folder (doctor promises to only read), and it is
 * the one door through which the CLI looks inside: the file formats stay this folder's business.
 */

export { fallbackDirForConfig, type FallbackState };

/** A journal not yet replayed into the database. */
export interface JournalView {
  file: string;
  /** Entries that are outcomes (complete, fail, release, expired). */
  outcomes: number;
  /** Entries that are claims. */
  claims: number;
  owner: ProcessIdentity | null;
  /** Its process still runs (it is degraded and replays the journal itself). */
  ownerAlive: boolean;
}

export interface MarkersView {
  total: number;
  byState: [MarkerState, number][];
  /** Markers whose owner process is gone. */
  stale: number;
}

/** A salvage lock: a process is salvaging the database, or one died doing so. */
export interface SalvageView {
  pid: number;
  running: boolean;
}

export interface FallbackView {
  /** Every ckpt process using the folder whose process still runs. */
  states: FallbackState[];
  journals: JournalView[];
  markers: MarkersView;
  salvages: SalvageView[];
}

/** The snapshot file of a fallback folder (it may not exist yet). */
export function snapshotFile(dir: string): string {
  return path.join(dir, SNAPSHOT_NAME);
}

/** Read the folder once. `now` judges whether a salvage lock still stands. */
export function inspectFallback(dir: string, now: number): FallbackView {
  const states = readFallbackStates(dir);
  const journals = listJournals(dir).map((f): JournalView => {
    const j = readJournal(f);
    const outcomes = j.entries.filter((e) => e.t !== 'claim').length;
    const owner = ownerOf(j, os.hostname());
    return { file: j.file, outcomes, claims: j.entries.length - outcomes, owner, ownerAlive: owner ? isAlive(owner) : false };
  });
  const all = new ClaimMarkers(path.join(dir, 'claims')).all();
  const byState = new Map<MarkerState, number>();
  for (const m of all) byState.set(m.state, (byState.get(m.state) ?? 0) + 1);
  const markers: MarkersView = { total: all.length, byState: [...byState], stale: all.filter((m) => !isAlive(m.owner)).length };
  const salvages = new ClaimMarkers(path.join(dir, 'locks')).all().map((l): SalvageView => ({ pid: l.owner.pid, running: claimStands(l, now) }));
  return { states, journals, markers, salvages };
}
