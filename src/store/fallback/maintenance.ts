import type { Logger } from 'pino';
import type { StoreUnavailableError } from '../sqlite-errors.js';
import { snapshotAge, takeSnapshot } from './snapshot.js';
import type { SqlitePrimary } from './sqlite-primary.js';
import { removeStaleStates } from './state-files.js';

/** What normal-mode upkeep needs from the FallbackStore it keeps. */
export interface MaintenanceDeps {
  dir: string;
  /** The primary when it is SQLite (quick_check and snapshots need the file); null: PostgreSQL. */
  sq: SqlitePrimary | null;
  /** quick_check period (0: never). */
  healthCheckMs: number;
  /** Snapshot period (0: no snapshots). */
  snapshotMs: number;
  fileMode: number;
  clock: () => number;
  log: Logger | undefined;
  /** The store is in normal mode. */
  normal: () => boolean;
  /** The database is open. */
  open: () => boolean;
  closed: () => boolean;
  /** The health check found the file bad: switch to degraded mode. */
  degrade: (err: StoreUnavailableError) => void;
}

/**
 * Normal-mode upkeep on timers: a quick_check through a fresh connection (the daemon's own
 * connection would not notice a file damaged underneath it: its page cache still holds the
 * good pages), removal of state files of processes killed meanwhile, and the periodic snapshot.
 */
export class Maintenance {
  private healthTimer: NodeJS.Timeout | null = null;
  private snapshotTimer: NodeJS.Timeout | null = null;
  private snapshotting: Promise<void> | null = null;

  constructor(private readonly d: MaintenanceDeps) {}

  start(): void {
    if (this.d.healthCheckMs > 0) {
      this.healthTimer = setInterval(() => this.healthCheck(), this.d.healthCheckMs);
      this.healthTimer.unref();
    }
    if (this.d.snapshotMs > 0 && this.d.sq) {
      // Checked once a minute whatever the period, so a snapshot follows soon after a restart.
      this.snapshotTimer = setInterval(() => void this.snapshot(), Math.min(this.d.snapshotMs, 60_000));
      this.snapshotTimer.unref();
      setImmediate(() => void this.snapshot());
    }
  }

  /** Stop the timers and wait for a snapshot being taken. */
  async stop(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer);
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    await this.snapshotting;
  }

  /** quick_check through a fresh connection (its own empty page cache reads the file as it is now). */
  healthCheck(): void {
    if (this.d.closed()) return;
    // State files of daemons killed meanwhile (a readdir; once a minute).
    removeStaleStates(this.d.dir);
    if (!this.d.normal() || !this.d.open() || !this.d.sq) return;
    const bad = this.d.sq.checkFile();
    if (bad) this.d.degrade(bad);
  }

  /** Take a snapshot if the last one is older than the period. */
  async snapshot(force = false): Promise<void> {
    const sdb = this.d.sq?.db;
    if (!this.d.normal() || !sdb || this.d.closed() || this.snapshotting) return;
    const age = snapshotAge(this.d.dir, this.d.clock());
    if (!force && age !== null && age < this.d.snapshotMs) return;
    const run = async () => {
      try {
        const r = await takeSnapshot(sdb, this.d.dir, this.d.fileMode);
        this.d.log?.debug({ bytes: r.bytes, ms: r.ms }, 'database snapshot taken');
      } catch (err) {
        this.d.log?.warn({ err }, 'could not take a database snapshot');
      } finally {
        this.snapshotting = null;
      }
    };
    this.snapshotting = run();
    await this.snapshotting;
  }
}
