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
 * turn that into a steady load on the database the daemons write to. `ckpt_oldest_pending_age_seconds`
 * comes from the same cached read.
 *
 * Labels: the per-file series carry `folder` (the configured watch folder the file was found
 * in, never the file's own sub-folder: a recursive watch over dated folders would otherwise add
 * a series a day) and `file_type` (the config's fileType). Both come from the config, so the
 * number of series is bounded by it: watch entries x failure kinds.
 */
import fs from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { STATUSES, type Status, type StoreStats } from '../store/types.js';

/** Failure kinds given their own series from the start (so a rate() over them exists at 0). */
export const FAILURE_KINDS = ['exit', 'signal', 'timeout', 'permanent', 'lease_lost', 'vanished', 'threw', 'spawn', 'aborted'] as const;

/**
 * Handler durations: 10 ms (a no-op module handler) to 10 min (the default handler timeout).
 * Seconds, Prometheus's base unit.
 */
const HANDLER_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Discovery to claim: immediate when idle; minutes or hours when a backlog drains. */
const LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600];

/** Which watch entry a file came from: the series labels of the per-file metrics. */
export interface FileLabels {
  /** The configured watch folder (`watch[].dir`); '' for a file outside every watched folder. */
  folder: string;
  fileType: string;
}

/** What the ledger says, read on scrape: counts by status and the oldest pending file. */
export type LedgerSnapshot = Pick<StoreStats, 'counts' | 'oldestPendingAt'>;

export interface MetricsOptions {
  /** Counts by status for `ckpt_files`; omitted: the gauge stays empty. */
  counts?: () => Promise<Record<Status, number>>;
  /** Counts and the oldest pending file in one read (store.stats()); takes precedence over `counts`. */
  ledger?: () => Promise<LedgerSnapshot>;
  /** The watch entries, so that every folder's series exist from the start (at 0). */
  folders?: readonly FileLabels[];
  /** `ckpt_build_info{version,store}`. */
  build?: { version: string; store: 'sqlite' | 'postgres' };
  /** The SQLite database file; its `-wal` size becomes `ckpt_wal_bytes`. */
  databasePath?: string;
  /** How long a counts() result is reused (default 5000 ms). */
  countsCacheMs?: number;
  /** Node process metrics (memory, CPU, event loop lag; default true). */
  processMetrics?: boolean;
  now?: () => number;
}

type FileLabelNames = 'folder' | 'file_type';
/** A ledger read: without `ledger` (counts only) the oldest pending file is unknown. */
type LedgerRead = { counts: Record<Status, number>; oldestPendingAt?: string | null };

export class Metrics {
  readonly registry = new Registry();
  private readonly claims: Counter<FileLabelNames>;
  private readonly completions: Counter<FileLabelNames>;
  private readonly bytes: Counter<FileLabelNames>;
  private readonly failures: Counter<'kind' | FileLabelNames>;
  private readonly takeovers: Counter;
  private readonly handlerDuration: Histogram<'outcome' | FileLabelNames>;
  private readonly discoveryLatency: Histogram;
  private readonly degraded: Gauge;
  private readonly handlerUnavailable: Gauge;
  private readonly heartbeatAt: Gauge;
  private cached: { at: number; ledger: LedgerRead } | null = null;
  private pending: Promise<LedgerRead> | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: MetricsOptions = {}) {
    const registers = [this.registry];
    this.now = opts.now ?? Date.now;
    const fileLabels = ['folder', 'file_type'] as const;
    this.claims = new Counter({ name: 'ckpt_claims_total', help: 'Files claimed by this process, by watch folder and file type.', labelNames: fileLabels, registers });
    this.completions = new Counter({ name: 'ckpt_completions_total', help: 'Files this process completed, by watch folder and file type.', labelNames: fileLabels, registers });
    this.bytes = new Counter({
      name: 'ckpt_handled_bytes_total',
      help: 'Size of the files this process completed (as the handler read them), by watch folder and file type.',
      labelNames: fileLabels,
      registers,
    });
    this.failures = new Counter({
      name: 'ckpt_failures_total',
      help: 'Failed attempts in this process, by kind (exit, signal, timeout, permanent, lease_lost, vanished, ...), watch folder and file type.',
      labelNames: ['kind', ...fileLabels],
      registers,
    });
    this.takeovers = new Counter({
      name: 'ckpt_lease_takeovers_total',
      help: 'Expired claims of other (dead or hung) workers taken over by this process.',
      registers,
    });
    this.handlerDuration = new Histogram({
      name: 'ckpt_handler_duration_seconds',
      help: 'How long the handler ran, by outcome (completed, failed), watch folder and file type.',
      labelNames: ['outcome', ...fileLabels],
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
    this.heartbeatAt = new Gauge({
      name: 'ckpt_last_heartbeat_timestamp_seconds',
      help: 'When this process last recorded its heartbeat (Unix time): in the database, or in its fallback state file while degraded; it stops moving when the store hangs.',
      registers,
    });
    this.seedFolderSeries(opts.folders ?? []);
    this.registerLedgerGauges(registers);
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** build_info, and the gauges read from the shared ledger or the database file when Prometheus scrapes. */
  private registerLedgerGauges(registers: Registry[]): void {
    const self = this;
    if (this.opts.build !== undefined) {
      new Gauge({ name: 'ckpt_build_info', help: 'Always 1: the version of ckpt and the kind of store this process runs with.', labelNames: ['version', 'store'], registers }).set(
        { version: this.opts.build.version, store: this.opts.build.store },
        1,
      );
    }
    new Gauge({
      name: 'ckpt_files',
      help: 'Files in the ledger by status (shared by every process on the database; cached a few seconds).',
      labelNames: ['status'],
      registers,
      async collect() {
        const ledger = await self.ledgerCached();
        if (ledger === null) return;
        for (const s of STATUSES) this.set({ status: s }, ledger.counts[s]);
      },
    });
    if (this.opts.ledger !== undefined) {
      new Gauge({
        name: 'ckpt_oldest_pending_age_seconds',
        help: 'How long the oldest pending file has waited since it became due (0 when none waits; shared ledger, cached like ckpt_files).',
        registers,
        async collect() {
          const at = (await self.ledgerCached())?.oldestPendingAt;
          if (at === undefined) return;
          this.set(at === null ? 0 : Math.max(0, (self.now() - Date.parse(at)) / 1000));
        },
      });
    }
    if (this.opts.databasePath !== undefined) {
      const wal = `${this.opts.databasePath}-wal`;
      new Gauge({
        name: 'ckpt_wal_bytes',
        help: 'Size of the SQLite write-ahead log; a reader holding a transaction open keeps it growing.',
        registers,
        collect() {
          this.set(walSize(wal));
        },
      });
    }
  }

  /** Every folder's series from the start, so that rate() and increase() see the first file. */
  private seedFolderSeries(folders: NonNullable<MetricsOptions['folders']>): void {
    for (const f of folders) {
      const l = labelsOf(f);
      this.claims.inc(l, 0);
      this.completions.inc(l, 0);
      this.bytes.inc(l, 0);
      for (const kind of FAILURE_KINDS) this.failures.inc({ kind, ...l }, 0);
    }
  }

  // --- what the runner calls (structurally the runner's RunnerMetrics) ----------------------

  claimed(n: number, file: FileLabels = NO_FOLDER): void {
    if (n > 0) this.claims.inc(labelsOf(file), n);
  }

  /** A completed file; `bytes`: its size as the handler read it, when known. */
  completed(durationMs: number, file: FileLabels = NO_FOLDER, bytes?: number): void {
    const l = labelsOf(file);
    this.completions.inc(l);
    if (bytes !== undefined && bytes > 0) this.bytes.inc(l, bytes);
    this.handlerDuration.observe({ outcome: 'completed', ...l }, Math.max(0, durationMs) / 1000);
  }

  /** A failed attempt; `durationMs` when the handler ran (not for a lost lease or a vanished file). */
  failed(kind: string, durationMs?: number, file: FileLabels = NO_FOLDER): void {
    const l = labelsOf(file);
    this.failures.inc({ kind: failureLabel(kind), ...l });
    if (durationMs !== undefined) this.handlerDuration.observe({ outcome: 'failed', ...l }, Math.max(0, durationMs) / 1000);
  }

  /** The heartbeat was written to the database at `ms` (epoch). */
  heartbeat(ms: number): void {
    this.heartbeatAt.set(ms / 1000);
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
   * The ledger at most once per cache period, shared by concurrent scrapes (and by ckpt_files
   * and the oldest-pending gauge). A failing store leaves the last value in place (stale rather
   * than absent; the degraded gauge says why).
   */
  private async ledgerCached(): Promise<LedgerRead | null> {
    const { ledger, counts } = this.opts;
    const get = ledger ?? (counts === undefined ? undefined : async () => ({ counts: await counts() }));
    if (get === undefined) return null;
    const ttl = this.opts.countsCacheMs ?? 5_000;
    if (this.cached !== null && this.now() - this.cached.at < ttl) return this.cached.ledger;
    this.pending ??= get().finally(() => {
      this.pending = null;
    });
    try {
      const snapshot = await this.pending;
      this.cached = { at: this.now(), ledger: snapshot };
      return snapshot;
    } catch {
      return this.cached?.ledger ?? null;
    }
  }
}

const NO_FOLDER: FileLabels = { folder: '', fileType: '' };

/** Prometheus label names are snake_case; '' becomes `other` (an empty value drops the label). */
function labelsOf(f: FileLabels): { folder: string; file_type: string } {
  return { folder: f.folder === '' ? 'other' : f.folder, file_type: f.fileType === '' ? 'other' : f.fileType };
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
