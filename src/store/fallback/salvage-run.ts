import type { Logger } from 'pino';
import { type ClaimMarkers, claimStands } from './claim-markers.js';
import { type MarkerAuthor, markerBody } from './open-claims.js';
import { type SalvageReport, salvageDatabase } from './salvage.js';

/** A salvage that failed (disk full, say) is tried again after this long, not every probe. */
const SALVAGE_RETRY_MS = 30_000;
/** The lock's name among the fallback folder's locks. */
const SALVAGE_LOCK = 'salvage';

/** What a salvage needs from the FallbackStore whose database it rebuilds. */
export interface SalvageRunDeps {
  /** The database file. */
  file: string;
  /** The fallback folder: work space, the snapshot, and the lock. */
  dir: string;
  locks: ClaimMarkers;
  author: MarkerAuthor;
  snapshot: string;
  fileMode: number | undefined;
  clock: () => number;
  log: Logger | undefined;
  /** Another process salvaged already: the path holds a new file (and ours is still open). */
  replacedWhileOpen: () => boolean;
  closePrimary: () => void;
  /** A salvage finished: the store records it and is no longer corrupt. */
  salvaged: (report: SalvageReport) => void;
}

/**
 * When and under which lock a corrupt SQLite file is salvaged (salvage.ts does the work): one
 * process at a time, through a lock in the fallback folder that every ckpt process checks
 * before it opens the file; a failed try is repeated after 30 s, not on every probe.
 */
export class SalvageRun {
  private lastTry = 0;

  constructor(private readonly d: SalvageRunDeps) {}

  /** Another store (process or instance) holds the salvage lock right now. */
  lockStands(): boolean {
    const { locks } = this.d;
    if (!locks.mayHave(SALVAGE_LOCK)) return false;
    try {
      const m = locks.current(SALVAGE_LOCK);
      return m !== null && claimStands(m, this.d.clock()) && m.instance !== this.d.author.instance;
    } catch {
      return true;
    }
  }

  /** Move the corrupt file aside and build a fresh one from what can be read. True when done. */
  run(now: number): boolean {
    const { locks, log } = this.d;
    if (now - this.lastTry < SALVAGE_RETRY_MS && this.lastTry !== 0) return false;
    this.lastTry = now;
    const cur = locks.current(SALVAGE_LOCK);
    if (cur && claimStands(cur, now)) return false;
    const lock = locks.transition(SALVAGE_LOCK, cur?.gen ?? 0, markerBody(this.d.author, SALVAGE_LOCK, 'claimed', {
      token: `salvage-${process.pid}-${now}`, leaseExpiresAt: now + 10 * 60_000,
    }, this.d.clock()));
    if (!lock) return false;
    try {
      // Another process may have salvaged already: then the path holds a new, healthy file.
      if (this.d.replacedWhileOpen()) {
        this.d.closePrimary();
        return true;
      }
      const report = salvageDatabase(this.d.file, {
        now,
        workRoot: this.d.dir,
        snapshot: this.d.snapshot,
        ...(this.d.fileMode === undefined ? {} : { fileMode: this.d.fileMode }),
      });
      this.d.closePrimary();
      this.lastTry = 0;
      this.d.salvaged(report);
      log?.error(
        {
          corruptFile: report.corruptPath, moved: report.moved, salvagedRows: report.checkpoints, completed: report.completed, attempts: report.attempts,
          headerRepaired: report.headerRepaired, fromPages: report.fromPages, fromSnapshot: report.fromSnapshot, rolledForward: report.rolledForward, ms: report.ms,
        },
        'the database file was corrupt: moved aside (never deleted) and salvaged into a fresh database',
      );
      return true;
    } catch (err) {
      log?.error({ err }, 'salvage of the corrupt database failed; staying degraded, will retry');
      return false;
    } finally {
      locks.transition(SALVAGE_LOCK, lock.gen, { ...lock, state: 'released', at: this.d.clock() });
      locks.remove(SALVAGE_LOCK);
    }
  }
}
