/**
 * Scheduled purge (`retention` in the config): completed and dead rows older than their window
 * are deleted with their attempts, leaving the tombstones `ckpt purge` leaves; tombstones older
 * than their own window are deleted too. Off when the key is absent.
 *
 *   start -> pass (soon after the start) -> pass every RETENTION_INTERVAL_MS -> ... -> stop
 *   pass:  purge(completed, limit BATCH) until a batch comes back short, then dead, then
 *          tombstones; one info line with the counts and the cut-offs
 *
 * Every batch is its own short write transaction (PurgeQuery.limit), with a turn of the event
 * loop in between, so the claim loop and other processes get the write lock between batches
 * even while years of history are purged at once.
 *
 * Several processes on one database each run their own pass. That is harmless: a purge is a
 * delete of rows past a cut-off, so whichever pass comes second finds nothing left to delete
 * (idempotent), and batches of two passes interleave like any other writes.
 *
 * A pass that meets a locked or degraded database (StoreUnavailableError; the fallback store
 * refuses purges while degraded) stops and tries again at the next interval; nothing is lost
 * by waiting, the rows are only older.
 */
import type { Logger } from 'pino';
import type { RetentionConfig } from '../config/types.js';
import { StoreUnavailableError } from '../store/sqlite-errors.js';
import type { CheckpointStore as Store } from '../store/types.js';

/**
 * Rows per write transaction. 1,000 rows (each with its attempt rows and a new tombstone) took
 * 16 ms (median; slowest 152 ms at load average 10) on a 2-core box with 1M rows
 * (scripts/bench/retention.ts), so a writer waits at most that long behind a batch: far below
 * the 5 s default lockTimeoutMs, while an hour's 36,000 files at 10 files/s take 36 batches.
 */
export const RETENTION_BATCH = 1_000;

/**
 * Hourly: the windows are days long, so an hour's delay is a few percent of a day's rows
 * (36,000 at 10 files/s, about 15 batches), and a pass with nothing to do costs one short read.
 */
export const RETENTION_INTERVAL_MS = 3_600_000;

/**
 * The first pass, shortly after the start: a daemon restarted more often than hourly (deploys,
 * a crash loop) would otherwise never purge. The delay lets the startup scan go first.
 */
export const RETENTION_FIRST_DELAY_MS = 5_000;

export interface RetentionRun {
  completed: number;
  dead: number;
  tombstones: number;
  batches: number;
  /** The cut-offs used (ISO), for the kinds that have a window. */
  cutoff: { completed?: string; dead?: string; tombstones?: string };
}

/** One retention pass, as the daemon runs it; the stores' errors are thrown to the caller. */
export async function retentionPass(store: Store, cfg: RetentionConfig, now: number, opts: { batch?: number; stopped?: () => boolean } = {}): Promise<RetentionRun> {
  const limit = opts.batch ?? RETENTION_BATCH;
  const run: RetentionRun = { completed: 0, dead: 0, tombstones: 0, batches: 0, cutoff: {} };
  const drain = async (one: () => Promise<number>): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await one();
      total += n;
      run.batches++;
      if (n < limit || opts.stopped?.()) return total;
      // Let the claim loop's writes in between two batches.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  };
  for (const status of ['completed', 'dead'] as const) {
    const olderThanMs = status === 'completed' ? cfg.completedMs : cfg.deadMs;
    if (olderThanMs === null || opts.stopped?.()) continue;
    run.cutoff[status] = new Date(now - olderThanMs).toISOString();
    run[status] = await drain(() => store.purge({ olderThanMs, statuses: [status], now, limit }));
  }
  const tombMs = cfg.tombstonesMs;
  if (tombMs !== null && !opts.stopped?.()) {
    run.cutoff.tombstones = new Date(now - tombMs).toISOString();
    run.tombstones = await drain(() => store.expireTombstones({ olderThanMs: tombMs, now, limit }));
  }
  return run;
}

export interface RetentionDeps {
  store: Store;
  log: Logger;
  /** The windows in effect (a reload changes them); null: off. */
  config: RetentionConfig | null;
  intervalMs?: number;
  firstDelayMs?: number;
}

/** The daemon part: a timer, one pass at a time, never throws. */
export class Retention {
  private cfg: RetentionConfig | null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** A reload came during a pass: the next one follows soon instead of in an hour. */
  private soon = false;

  constructor(private readonly d: RetentionDeps) {
    this.cfg = d.config;
  }

  start(): void {
    this.schedule(this.d.firstDelayMs ?? RETENTION_FIRST_DELAY_MS);
  }

  /**
   * A reload: a pass with the new windows runs soon (an operator who shortens them expects the
   * purge now, not within the hour), then hourly again; null turns the schedule off.
   */
  reconfigure(cfg: RetentionConfig | null): void {
    this.cfg = cfg;
    if (this.stopped) return;
    if (this.running) {
      this.soon = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.schedule(this.d.firstDelayMs ?? RETENTION_FIRST_DELAY_MS);
  }

  /** Shutdown: no new pass; the current one ends after its batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.cfg === null || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.pass().finally(() => {
        this.running = null;
        const next = this.soon ? (this.d.firstDelayMs ?? RETENTION_FIRST_DELAY_MS) : (this.d.intervalMs ?? RETENTION_INTERVAL_MS);
        this.soon = false;
        this.schedule(next);
      });
    }, delayMs);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    const cfg = this.cfg;
    if (cfg === null) return;
    const { log } = this.d;
    const startedAt = Date.now();
    try {
      const r = await retentionPass(this.d.store, cfg, startedAt, { stopped: () => this.stopped });
      log.info(
        { removed: { completed: r.completed, dead: r.dead, tombstones: r.tombstones }, cutoff: r.cutoff, batches: r.batches, ms: Date.now() - startedAt },
        `retention: purged ${r.completed} completed and ${r.dead} dead files, expired ${r.tombstones} tombstones`,
      );
    } catch (err) {
      if (err instanceof StoreUnavailableError) {
        log.warn({ err: { message: err.message, kind: err.kind } }, 'retention: database unavailable, purge skipped until the next pass');
      } else {
        log.error({ err }, 'retention: purge failed; trying again at the next pass');
      }
    }
  }
}
