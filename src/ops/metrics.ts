/**
 * Prometheus metrics for one ckpt process (served by ./http.ts at GET /metrics).
 *
 * A private Registry, never prom-client's global one: an embedding program may have its own
 * metrics, and tests build many Metrics objects in one process.
 *
 * Counters and histograms are this process's own (Prometheus sums them across processes);
 * `ckpt_files` is the shared ledger, the same for every process on one database, so sum it
 * with `max`, not `sum`, across instances. It is read from store.counts() when scraped, and
 * cached for `countsCacheMs` (default 5 s): a count by status reads every row (about a
 * hundred ms at a million rows), and several scrapers, or a short scrape interval, must not
 * turn that into a steady load on the database the daemons write to.
 */
import fs from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { STATUSES, type Status } from '../store/types.js';

/** Failure kinds given their own series from the start (so a rate() over them exists at 0). */
export const FAILURE_KINDS = ['exit', 'signal', 'timeout', 'permanent', 'lease_lost', 'vanished', 'threw', 'spawn', 'aborted'] as const;

/**
 * Handler durations: 10 ms (a no-op module handler) to 10 min (the default handler timeout).
 * Seconds, Prometheus's base unit.
 */
const HANDLER_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Discovery to claim: immediate when idle; minutes or hours when a backlog drains. */
const LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600];

export interface MetricsOptions {
  /** Counts by status for `ckpt_files`; omitted: the gauge stays empty. */
  counts?: () => Promise<Record<Status, number>>;
  /** The SQLite database file; its `-wal` size becomes `ckpt_wal_bytes`. */
  databasePath?: string;
  /** How long a counts() result is reused (default 5000 ms). */
  countsCacheMs?: number;
  /** Node process metrics (memory, CPU, event loop lag; default true). */
  processMetrics?: boolean;
  now?: () => number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly claims: Counter;
  private readonly completions: Counter;
  private readonly failures: Counter<'kind'>;
  private readonly takeovers: Counter;
  private readonly handlerDuration: Histogram<'outcome'>;
  private readonly discoveryLatency: Histogram;
  private readonly degraded: Gauge;
  private readonly handlerUnavailable: Gauge;
  private cached: { at: number; counts: Record<Status, number> } | null = null;
  private pending: Promise<Record<Status, number>> | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: MetricsOptions = {}) {
    const registers = [this.registry];
    this.now = opts.now ?? Date.now;
    this.claims = new Counter({ name: 'ckpt_claims_total', help: 'Files claimed by this process.', registers });
    this.completions = new Counter({ name: 'ckpt_completions_total', help: 'Files this process completed.', registers });
    this.failures = new Counter({
      name: 'ckpt_failures_total',
      help: 'Failed attempts in this process, by kind (exit, signal, timeout, permanent, lease_lost, vanished, ...).',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of FAILURE_KINDS) this.failures.inc({ kind }, 0);
    this.takeovers = new Counter({
      name: 'ckpt_lease_takeovers_total',
      help: 'Expired claims of other (dead or hung) workers taken over by this process.',
      registers,
    });
    this.handlerDuration = new Histogram({
      name: 'ckpt_handler_duration_seconds',
      help: 'How long the handler ran, by outcome (completed, failed).',
      labelNames: ['outcome'],
      buckets: HANDLER_BUCKETS,
      registers,
    });
    this.discoveryLatency = new Histogram({
      name: 'ckpt_discovery_to_claim_seconds',
      help: 'Time from a file being recorded as ready to it being claimed (files discovered by this process).',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.degraded = new Gauge({
      name: 'ckpt_degraded',
      help: '1 while this process works without its database (degraded mode), else 0.',
      registers,
    });
    this.degraded.set(0);
    this.handlerUnavailable = new Gauge({
      name: 'ckpt_handler_unavailable',
      help: '1 while the handler program cannot be started (claiming paused, retries kept), else 0.',
      registers,
    });
    this.handlerUnavailable.set(0);

    const self = this;
    new Gauge({
      name: 'ckpt_files',
      help: 'Files in the ledger by status (shared by every process on the database; cached a few seconds).',
      labelNames: ['status'],
      registers,
      async collect() {
        const counts = await self.countsCached();
        if (counts === null) return;
        for (const s of STATUSES) this.set({ status: s }, counts[s]);
      },
    });
    if (opts.databasePath !== undefined) {
      const wal = `${opts.databasePath}-wal`;
      new Gauge({
        name: 'ckpt_wal_bytes',
        help: 'Size of the SQLite write-ahead log; a reader holding a transaction open keeps it growing.',
        registers,
        collect() {
          this.set(walSize(wal));
        },
      });
    }
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  // --- what the runner calls (structurally the runner's RunnerMetrics) ----------------------

  claimed(n: number): void {
    if (n > 0) this.claims.inc(n);
  }

  completed(durationMs: number): void {
    this.completions.inc();
    this.handlerDuration.observe({ outcome: 'completed' }, Math.max(0, durationMs) / 1000);
  }

  /** A failed attempt; `durationMs` when the handler ran (not for a lost lease or a vanished file). */
  failed(kind: string, durationMs?: number): void {
    this.failures.inc({ kind: failureLabel(kind) });
    if (durationMs !== undefined) this.handlerDuration.observe({ outcome: 'failed' }, Math.max(0, durationMs) / 1000);
  }

  leaseTakeovers(n: number): void {
    if (n > 0) this.takeovers.inc(n);
  }

  discoveryToClaim(ms: number): void {
    this.discoveryLatency.observe(Math.max(0, ms) / 1000);
  }

  setDegraded(on: boolean): void {
    this.degraded.set(on ? 1 : 0);
  }

  setHandlerUnavailable(on: boolean): void {
    this.handlerUnavailable.set(on ? 1 : 0);
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * counts() at most once per cache period, shared by concurrent scrapes. A failing store
   * leaves the last value in place (stale rather than absent; the degraded gauge says why).
   */
  private async countsCached(): Promise<Record<Status, number> | null> {
    const get = this.opts.counts;
    if (get === undefined) return null;
    const ttl = this.opts.countsCacheMs ?? 5_000;
    if (this.cached !== null && this.now() - this.cached.at < ttl) return this.cached.counts;
    this.pending ??= get().finally(() => {
      this.pending = null;
    });
    try {
      const counts = await this.pending;
      this.cached = { at: this.now(), counts };
      return counts;
    } catch {
      return this.cached?.counts ?? null;
    }
  }
}

/**
 * Labels come from code, but a kind is a free string: anything that does not look like an
 * identifier is folded into `other`, so a message passed by mistake cannot create a series per
 * file (unbounded label values are what takes a Prometheus server down).
 */
export function failureLabel(kind: string): string {
  return /^[a-z][a-z0-9_]{0,31}$/.test(kind) ? kind : 'other';
}

function walSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    // No -wal file: the last connection closed cleanly and removed it.
    return 0;
  }
}
