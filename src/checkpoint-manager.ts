import os from 'node:os';
import { openStore } from './store/open-store.js';
import type { RetryPolicy, CheckpointStore, Claim, ChangePolicy } from './store/types.js';

export interface CheckpointManagerOptions {
  /** Path of the SQLite database (created if missing). */
  database: string;
  /** Defaults to `hostname:pid`. */
  workerId?: string;
  /** How long a claim holds without renewal; renewed automatically at a third of it. */
  leaseMs?: number;
  retry?: RetryPolicy;
  /**
   * What a different `version` (claimFile's option) does to a completed or dead file:
   * 'reprocess' (default) makes it a new version to claim, 'ignore' keeps it finished.
   * Calls without a version never re-open a finished file, whatever the policy.
   */
  onChange?: ChangePolicy;
}

export interface ClaimFileOptions {
  /**
   * What identifies this content of the file: a content hash, an ETag, an object-store
   * generation. A completed (or dead) file given a different version is claimable again as a
   * new version; the same version, or no version, is not. `fileTimestamp` is never a version.
   */
  version?: string;
}

/**
 * The fingerprint recorded for a file claimed without a version. The same for every call, so a
 * timestamp (the seed passes `new Date()`) never makes a finished file look changed.
 */
const UNVERSIONED = 'unversioned';

export interface ProcessingStats {
  totalRows: number;
  filteredRows: number;
  persistedRows: number;
  durationMs: number;
}

/** Thrown when a write names a file this manager no longer holds (taken over, or never claimed). */
export class ClaimLostError extends Error {
  override readonly name = 'ClaimLostError';
}

/**
 * The seed's CheckpointManager, typed and fixed: claims carry a lease that this manager renews
 * while you work, a crashed process's claims expire and are retried, only the holder of a claim
 * can complete or fail it, retries back off, and there is no silent single-worker fallback.
 * The daemon uses the store directly; this is for programs that run their own loop.
 */
export class CheckpointManager {
  private readonly store: CheckpointStore;
  private readonly workerId: string;
  private readonly leaseMs: number;
  private readonly onChange: ChangePolicy;
  private readonly held = new Map<string, Claim>();
  private readonly timer: NodeJS.Timeout;

  constructor(opts: CheckpointManagerOptions) {
    this.workerId = opts.workerId ?? `${os.hostname()}:${process.pid}`;
    this.leaseMs = opts.leaseMs ?? 60_000;
    this.onChange = opts.onChange ?? 'reprocess';
    this.store = openStore(opts.database, opts.retry ? { retry: opts.retry } : {});
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /**
   * Register the file (idempotent) and try to claim it. True: you hold it and must complete or
   * fail it. False: it is completed, dead, waiting for a retry, or held by a live worker.
   * `fileTimestamp` is recorded when the file is first registered; it is not a version: a
   * completed file is never claimed again unless `opts.version` says its content changed.
   */
  async claimFile(fileUrl: string, fileType: string, fileTimestamp: Date, opts: ClaimFileOptions = {}): Promise<boolean> {
    const now = Date.now();
    const ts = fileTimestamp.getTime();
    if (Number.isNaN(ts)) throw new TypeError(`claimFile(${fileUrl}): fileTimestamp is not a valid date`);
    const { version } = opts;
    if (version !== undefined && (typeof version !== 'string' || version === '')) {
      throw new TypeError(`claimFile(${fileUrl}): version must be a non-empty string`);
    }
    const file = { fileUrl, fileType, mtimeMs: ts, size: 0, fingerprint: version ?? UNVERSIONED };
    // Without a version, a finished file stays finished: the store's change rule is switched off.
    await this.store.discover([file], now, version === undefined ? { onChange: 'ignore' } : { onChange: this.onChange });
    const claim = await this.store.claimFile(fileUrl, { workerId: this.workerId, leaseMs: this.leaseMs, now });
    if (!claim) return false;
    this.held.set(fileUrl, claim);
    return true;
  }

  async completeFile(fileUrl: string, stats: ProcessingStats): Promise<void> {
    const claim = this.take(fileUrl);
    const [res] = await this.store.complete([
      {
        fileUrl,
        token: claim.token,
        now: Date.now(),
        stats: { totalRows: stats.totalRows, filteredRows: stats.filteredRows, persistedRows: stats.persistedRows, durationMs: stats.durationMs },
      },
    ]);
    if (res !== 'ok') throw new ClaimLostError(`completeFile(${fileUrl}): the claim was taken over; nothing was recorded`);
  }

  /** Record a failure: retried later with backoff, or dead when the budget is spent or `permanent`. */
  async failFile(fileUrl: string, errorMessage: string, opts: { permanent?: boolean; durationMs?: number } = {}): Promise<'failed' | 'dead'> {
    const claim = this.take(fileUrl);
    const res = await this.store.fail({
      fileUrl,
      token: claim.token,
      error: errorMessage,
      permanent: opts.permanent ?? false,
      now: Date.now(),
      durationMs: opts.durationMs ?? 0,
    });
    if (res === 'lost') throw new ClaimLostError(`failFile(${fileUrl}): the claim was taken over; nothing was recorded`);
    return res;
  }

  async isProcessed(fileUrl: string): Promise<boolean> {
    return (await this.store.get(fileUrl))?.status === 'completed';
  }

  /** The idempotency key of a file you hold, for your sink. */
  idempotencyKey(fileUrl: string): string {
    return this.take(fileUrl, false).idempotencyKey;
  }

  getWorkerId(): string {
    return this.workerId;
  }

  /** Give back what is still held (not counted as an attempt) and close the database. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const refs = [...this.held.values()].map((c) => ({ fileUrl: c.fileUrl, token: c.token }));
    this.held.clear();
    try {
      await this.store.release(refs, Date.now());
    } finally {
      await this.store.close();
    }
  }

  private take(fileUrl: string, remove = true): Claim {
    const claim = this.held.get(fileUrl);
    if (!claim) throw new ClaimLostError(`${fileUrl} is not claimed by this worker (${this.workerId})`);
    if (remove) this.held.delete(fileUrl);
    return claim;
  }

  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    const refs = [...this.held.values()].map((c) => ({ fileUrl: c.fileUrl, token: c.token }));
    try {
      const lost = await this.store.heartbeat(refs, this.leaseMs, Date.now());
      for (const l of lost) this.held.delete(l.fileUrl);
    } catch {
      // The next renewal tries again; a lease that runs out is taken over, which fencing makes safe.
    }
  }
}
