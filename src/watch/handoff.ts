/**
 * The hand-off to the sink: ready files queue here (a newer version of a path replaces an
 * older one) and go to the sink micro-batched, one call at a time. Nothing is lost when the
 * sink throws: the batch stays queued and is offered again after a backoff.
 */
import type fs from 'node:fs';
import type { Logger } from 'pino';
import { fingerprintOf } from '../file-identity.js';
import type { DiscoveredFile } from '../store/types.js';
import type { FolderState } from './folder-state.js';
import type { HandedFingerprints } from './handed-fingerprints.js';
import type { WatchCounters, WatchSettings } from './watcher-options.js';

export interface HandoffOptions {
  log: Logger;
  settings: WatchSettings;
  sink: (files: DiscoveredFile[]) => Promise<void>;
  handed: HandedFingerprints;
  counters: WatchCounters;
  /** Called when accepted files left the queue (room for waiting scans). */
  onSpace: () => void;
  closed: () => boolean;
}

export class Handoff {
  /** Ready files not yet accepted by the sink, by path. */
  private readonly queue = new Map<string, DiscoveredFile>();
  private flushing: Promise<void> | null = null;
  private flushScheduled = false;
  private held = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private consecutiveFailures = 0;

  constructor(private readonly o: HandoffOptions) {}

  get size(): number {
    return this.queue.size;
  }

  /** The fingerprint queued for `p`, if any. */
  queuedFingerprint(p: string): string | undefined {
    return this.queue.get(p)?.fingerprint;
  }

  enqueue(f: FolderState, p: string, st: fs.Stats): void {
    if (this.o.closed()) return;
    const fp = fingerprintOf(st);
    if (this.o.handed.last(p) === fp) return;
    this.queue.delete(p);
    this.queue.set(p, {
      fileUrl: p,
      fileType: f.spec.fileType,
      mtimeMs: Math.trunc(st.mtimeMs),
      size: st.size,
      fingerprint: fp,
    });
    this.kick();
  }

  /** Files found ready by one round of stability checks go out together: no flush until release(). */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    if (this.queue.size > 0) this.kick();
  }

  /** Offer the queued files now (a rescan also retries a sink that failed). */
  retry(): void {
    if (this.queue.size > 0) this.kick();
  }

  /** At close: no more retries (files still queued are found again by the next start-up scan). */
  stopRetrying(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
  }

  /** Resolves when a sink call in flight is done (so that the store can be closed after). */
  idle(): Promise<void> {
    return this.flushing ?? Promise.resolve();
  }

  /**
   * Flush at once when a batch is full, else on the next turn of the event loop, so that the
   * files found ready by one round of checks go out together without waiting on a timer.
   */
  private kick(): void {
    if (this.o.closed() || this.flushing !== null || this.retryTimer !== null) return;
    if (this.held && this.queue.size < this.o.settings.batchSize) return; // release() kicks
    if (this.queue.size >= this.o.settings.batchSize) {
      this.flushing = this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.o.closed() && this.flushing === null && this.retryTimer === null && this.queue.size > 0) {
        this.flushing = this.flush();
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      while (!this.o.closed() && this.queue.size > 0) {
        const batch = this.nextBatch();
        try {
          await this.o.sink(batch);
        } catch (err) {
          this.failed(batch, err);
          return;
        }
        this.consecutiveFailures = 0;
        for (const file of batch) {
          if (this.queue.get(file.fileUrl) === file) this.queue.delete(file.fileUrl);
          this.o.handed.remember(file.fileUrl, file.fingerprint);
        }
        this.o.counters.handed += batch.length;
        this.o.onSpace();
      }
    } finally {
      this.flushing = null;
    }
  }

  private nextBatch(): DiscoveredFile[] {
    const batch: DiscoveredFile[] = [];
    for (const file of this.queue.values()) {
      batch.push(file);
      if (batch.length >= this.o.settings.batchSize) break;
    }
    return batch;
  }

  private failed(batch: DiscoveredFile[], err: unknown): void {
    this.o.counters.sinkFailures++;
    this.consecutiveFailures++;
    // Back off 250 ms, 500 ms, ... up to rescanMs (and 30 s): the sink is the store, which
    // throws when the database is busy or broken; hammering it helps neither.
    const delay = Math.min(250 * 2 ** Math.min(this.consecutiveFailures - 1, 16), this.o.settings.rescanMs, 30_000);
    this.o.log.error(
      { err, path: batch[0]?.fileUrl, files: batch.length, queued: this.queue.size, failures: this.consecutiveFailures, retryInMs: delay },
      'handing files to the store failed; keeping them to retry',
    );
    if (this.o.closed()) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick();
    }, delay);
  }
}
