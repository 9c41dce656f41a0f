import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { StoreUnavailableError, toStoreError } from '../sqlite-errors.js';
import { checkIntegrity } from './health-probe.js';
import { drive } from './primary.js';
import { isAlive } from './process-identity.js';
import type { Recovery } from './recovery.js';
import type { SqlitePrimary } from './sqlite-primary.js';
import { removeStaleStates } from './state-files.js';
import { namesIn } from '../../dir-names.js';

/** What opening needs from the FallbackStore it starts. */
export interface StartDeps {
  kind: 'sqlite' | 'postgres';
  file: string;
  dir: string;
  host: string;
  sq: SqlitePrimary | null;
  log: Logger | undefined;
  recovery: Recovery;
  degrade: (err: StoreUnavailableError) => void;
}

/**
 * Open the database at start (quick_check it when `check`), or degrade if it is unavailable
 * and try to recover at once; then replay what processes that died left behind.
 */
export function* openAtStart(check: boolean, d: StartDeps): Generator<unknown, void, unknown> {
  try {
    yield d.recovery.openPrimary();
    if (check && d.sq?.db) {
      const bad = checkIntegrity(d.sq.db);
      if (bad) throw bad;
    }
  } catch (err) {
    const e = toStoreError(err, `open ${d.file}`);
    if (!(e instanceof StoreUnavailableError)) throw e;
    // PostgreSQL refusing ckpt (wrong password, no such database, no privilege) needs a
    // person, not degraded mode: only an unreachable or restarting server is ridden out.
    if (d.kind === 'postgres' && e.kind === 'broken') throw e;
    // Leftovers of dead processes go whatever the database says (a SIGKILLed daemon's state
    // file would otherwise show in `ckpt status` until a start found the database healthy).
    cleanLeftovers(d.dir, d.host);
    d.degrade(e);
    // A corrupt file is salvaged at once: nothing can be claimed until it is.
    yield drive(d.recovery.steps());
    return;
  }
  cleanLeftovers(d.dir, d.host);
  // Journals left by processes that died (a crash while degraded) go in first.
  try {
    yield drive(d.recovery.reconcileSteps(true));
  } catch (err) {
    const e = toStoreError(err, 'replaying journals at open');
    if (!(e instanceof StoreUnavailableError)) throw e;
    // Locked right now: the first call will degrade, and recovery replays them later.
    d.log?.warn({ err: e.message }, 'journals left behind could not be replayed at open; will retry');
  }
}

/**
 * State files, look-up copies and salvage work folders of processes that are gone (journals
 * and markers are not touched here: they are replayed first, see Recovery.replaySteps).
 */
function cleanLeftovers(dir: string, host: string): void {
  removeStaleStates(dir);
  const names = namesIn(dir);
  for (const n of names) {
    const full = path.join(dir, n);
    try {
      const m = /^(?:lookup|salvage)-(\d+)/.exec(n);
      if (m) {
        const pid = Number(m[1]);
        if (pid !== process.pid && !isAlive({ pid, host, startTicks: null })) fs.rmSync(full, { recursive: true, force: true });
      }
    } catch {
      // unreadable or being written: leave it
    }
  }
}
