import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pidExists } from '../../pid-exists.js';
import type { JournalEntry } from './journal.js';
import { type ProcessIdentity, isAlive } from './process-identity.js';
import { namesIn } from '../../dir-names.js';

/**
 * Claim markers: how several ckpt processes on one host keep from running the same file while
 * the database cannot arbitrate (locked or broken).
 *
 * Layout: `<db>.fallback/claims/<sha256(file_url)>/<generation>.json`. Each state change of a
 * file's claim writes the NEXT generation, created with link(2) from a fully written temporary
 * file: link fails with EEXIST when the name exists, so of two processes that both read
 * generation g and both try to write g+1 (two takers of a dead owner's claim, or an owner
 * completing just as a taker takes over), exactly one wins and the other is told so. The
 * content is complete before the name appears, so a reader never sees half a marker.
 * The highest generation present is the current state. Heartbeats and handler pids rewrite the
 * current generation in place (rename over it); they decide nothing, so they need no race.
 *
 * A marker outlives its claim: after a completion it says 'completed' until the outcome is in
 * the database (journal replayed), so that no other process runs the file meanwhile.
 */

export type MarkerState = 'claimed' | 'completed' | 'failed' | 'dead' | 'released';

export interface Marker {
  gen: number;
  fileUrl: string;
  state: MarkerState;
  owner: ProcessIdentity;
  /** The store instance that wrote it (two stores in one process, as in tests, are two owners). */
  instance: string;
  workerId: string;
  token: string;
  fileType: string;
  fingerprint: string;
  version: number;
  attempt: number;
  retryCount: number;
  /** claimed: when the lease runs out unless renewed. */
  leaseExpiresAt: number;
  /** failed: when the file may run again. */
  dueAt: number | null;
  handlerPid: number | null;
  at: number;
  /** Terminal states carry their journal entry, so the outcome survives even if the journal line was never written. */
  entry?: JournalEntry;
}

export type MarkerBody = Omit<Marker, 'gen'>;

const GEN_RE = /^(\d{6,})\.json$/;
/** A marker being written: `.tmp-<pid>-<random>` (writeTemp). */
const TEMP_RE = /^\.tmp-(\d+)-[0-9a-f]+$/;

export function markerKey(fileUrl: string): string {
  return createHash('sha256').update(fileUrl).digest('hex');
}

export class ClaimMarkers {
  constructor(
    readonly root: string,
    private readonly fileMode = 0o600,
  ) {}

  dirOf(fileUrl: string): string {
    return path.join(this.root, markerKey(fileUrl));
  }

  /** Cheap check for the normal path: does any marker folder exist at all? */
  anyExist(): boolean {
    try {
      return fs.readdirSync(this.root).length > 0;
    } catch {
      return false;
    }
  }

  /** A stat: is there a marker folder for this file (maybe empty, being removed)? */
  mayHave(fileUrl: string): boolean {
    return fs.existsSync(this.dirOf(fileUrl));
  }

  /** The current (highest) generation, or null when there is none. */
  current(fileUrl: string): Marker | null {
    return readCurrent(this.dirOf(fileUrl));
  }

  /**
   * Write generation `fromGen + 1`. Returns the new marker, or null when that generation
   * exists already (someone else moved first: re-read and decide again).
   */
  transition(fileUrl: string, fromGen: number, body: MarkerBody): Marker | null {
    const dir = this.dirOf(fileUrl);
    const marker: Marker = { ...body, gen: fromGen + 1 };
    const target = path.join(dir, genName(marker.gen));
    for (let tries = 0; ; tries++) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      let tmp: string;
      try {
        tmp = this.writeTemp(dir, marker);
      } catch (err) {
        // The folder was removed between mkdir and the write (its last marker was cleared).
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && tries < 5) continue;
        throw err;
      }
      try {
        fs.linkSync(tmp, target);
        if (!stepStands(dir, fromGen, marker.gen)) {
          fs.rmSync(target, { force: true });
          return null;
        }
        return marker;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return null;
        if (code === 'ENOENT' && tries < 5) continue;
        throw err;
      } finally {
        fs.rmSync(tmp, { force: true });
      }
    }
  }

  /**
   * Rewrite the current generation in place (lease renewal, handler pid). False when a newer
   * generation exists or the marker is gone: the claim was taken over.
   */
  refresh(marker: Marker): boolean {
    const dir = this.dirOf(marker.fileUrl);
    const cur = readCurrent(dir);
    if (!cur || cur.gen !== marker.gen || cur.token !== marker.token) return false;
    let tmp: string;
    try {
      tmp = this.writeTemp(dir, marker);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    fs.renameSync(tmp, path.join(dir, genName(marker.gen)));
    return true;
  }

  /**
   * Undo our own latest generation (a claim that turned out not to be needed), going back to
   * the state before it. False when it is no longer the latest.
   */
  drop(marker: Marker): boolean {
    const dir = this.dirOf(marker.fileUrl);
    const cur = readCurrent(dir);
    if (!cur || cur.gen !== marker.gen || cur.token !== marker.token) return false;
    fs.rmSync(path.join(dir, genName(marker.gen)), { force: true });
    if (marker.gen === 1) tryRmdir(dir);
    return true;
  }

  /**
   * Remove generations up to `upToGen` (lowest first, so a reader keeps seeing the newest
   * state until the last one goes), and the folder when nothing newer appeared meanwhile.
   */
  remove(fileUrl: string, upToGen = Number.MAX_SAFE_INTEGER): void {
    const dir = this.dirOf(fileUrl);
    for (const g of gens(dir)) {
      if (g > upToGen) return;
      fs.rmSync(path.join(dir, genName(g)), { force: true });
    }
    tryRmdir(dir);
  }

  /** The current marker of every file (for replay, clean-up and `ckpt doctor`). */
  all(): Marker[] {
    const keys = namesIn(this.root);
    const out: Marker[] = [];
    for (const k of keys) {
      const m = readCurrent(path.join(this.root, k));
      if (m) out.push(m);
      else tryRmdir(path.join(this.root, k));
    }
    return out;
  }

  private writeTemp(dir: string, marker: Marker): string {
    const tmp = path.join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    fs.writeFileSync(tmp, JSON.stringify(marker), { mode: this.fileMode, flag: 'wx' });
    return tmp;
  }
}

/**
 * Remove the half-written markers of processes that are gone: a process SIGKILLed between
 * writing its temp file and linking it leaves `.tmp-<pid>-...` behind, and the folder could
 * never be removed (the 60-second soak found one). Only the pid is in the name;
 * a reused pid keeps its file until that process is gone too, which costs nothing.
 */
function removeDeadTemps(dir: string): void {
  const names = namesIn(dir);
  for (const n of names) {
    const m = TEMP_RE.exec(n);
    if (!m || pidExists(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, n), { force: true });
  }
}


/**
 * After linking generation `gen` as the step from `fromGen`: the step stands only if `gen` is
 * the highest generation and `fromGen` is still there. link(2) alone cannot tell when the
 * folder was cleared after the caller read `fromGen` (a replay removes the markers it put into
 * the database) and another writer began again at generation 1: both links succeed, and two
 * processes each hold a claim (60-second soak: two degraded workers ran one
 * file 16 ms apart). The one whose step does not stand undoes it and reads again.
 */
function stepStands(dir: string, fromGen: number, gen: number): boolean {
  const g = gens(dir);
  return g[g.length - 1] === gen && (fromGen === 0 || g.includes(fromGen));
}

/** Whether a 'claimed' marker still stands: its owner lives and its lease has not run out. */
export function claimStands(m: Marker, now: number): boolean {
  return m.state === 'claimed' && m.leaseExpiresAt > now && isAlive(m.owner);
}

function genName(g: number): string {
  return `${String(g).padStart(6, '0')}.json`;
}

function gens(dir: string): number[] {
  const names = namesIn(dir);
  const out: number[] = [];
  for (const n of names) {
    const m = GEN_RE.exec(n);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

function readCurrent(dir: string): Marker | null {
  // A concurrent clean-up may remove the file between listing and reading: list again.
  for (let tries = 0; tries < 5; tries++) {
    const g = gens(dir);
    const top = g[g.length - 1];
    if (top === undefined) return null;
    try {
      const m = JSON.parse(fs.readFileSync(path.join(dir, genName(top)), 'utf8')) as Marker;
      return { ...m, gen: top };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      // Unparseable: written by something else. Treat as held, never as free.
      throw new Error(`claim marker ${path.join(dir, genName(top))} is unreadable: ${(err as Error).message}`);
    }
  }
  return null;
}

function tryRmdir(dir: string): void {
  removeDeadTemps(dir);
  try {
    fs.rmdirSync(dir);
  } catch {
    // not empty (a newer generation appeared) or gone already
  }
}
