/**
 * Scans of a watched folder: at start-up, every rescanMs, after an inotify overflow, after the
 * folder came back, and every few seconds where it could not be watched. A scan names every
 * file to PathLook, and waits for room when the bound is reached (nothing is dropped).
 */
import type { Logger } from 'pino';
import type { Candidates } from './candidates.js';
import { type ConsiderResult, type FolderState, isErrno, LOG_ONCE_CAP, STAT_BATCH } from './folder-state.js';
import type { PathLook } from './path-look.js';
import type { Room } from './room.js';
import { escapePath, scanTree, type ScanEntry } from './scan.js';
import type { WatchCounters, WatchSettings } from './watcher-options.js';

/** Progress line every this many entries during a scan. */
const SCAN_PROGRESS_EVERY = 10_000;

export interface FolderScansOptions {
  log: Logger;
  settings: WatchSettings;
  look: PathLook;
  candidates: Candidates;
  room: Room;
  counters: WatchCounters;
  closed: () => boolean;
  /** The root itself is gone (the scan could not open it). */
  onRootMissing: (f: FolderState, why: string) => void;
}

export class FolderScans {
  private readonly badNames = new Set<string>();

  constructor(private readonly o: FolderScansOptions) {}

  /** Scan `f`; a scan asked for while one runs makes that one go round once more. */
  scan(f: FolderState, reason: string): Promise<void> {
    if (f.scan !== null) {
      f.scanAgain = true;
      return f.scan;
    }
    const run = (async () => {
      do {
        f.scanAgain = false;
        await this.scanOnce(f, reason);
        reason = 'repeat';
      } while (f.scanAgain && !this.o.closed() && !f.gone);
    })();
    f.scan = run;
    return run
      .catch((err: unknown) => this.o.log.error({ folder: f.root, err }, 'folder scan failed; the next rescan retries'))
      .finally(() => {
        if (f.scan === run) f.scan = null;
      });
  }

  private async scanOnce(f: FolderState, reason: string): Promise<void> {
    const started = this.o.settings.now();
    const progress = (entries: number) => ({
      folder: f.root,
      reason,
      entries,
      tracked: this.o.candidates.tracker.size,
      elapsedMs: Math.round(this.o.settings.now() - started),
    });
    let seen = 0;
    let nextProgress = SCAN_PROGRESS_EVERY;
    try {
      for await (const batch of this.entries(f)) {
        await this.considerBatch(f, batch);
        seen += batch.length;
        if (seen >= nextProgress) {
          nextProgress += SCAN_PROGRESS_EVERY;
          this.o.log.info(progress(seen), 'scanning folder');
        }
      }
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) {
        this.o.onRootMissing(f, 'missing at scan');
        return;
      }
      throw err;
    }
    if (this.o.closed()) return;
    this.o.counters.scans++;
    if (reason !== 'periodic' && reason !== 'repeat') this.o.log.info(progress(seen), 'folder scan finished');
    else this.o.log.debug(progress(seen), 'folder scan finished');
  }

  private entries(f: FolderState): AsyncGenerator<ScanEntry[]> {
    return scanTree({
      root: f.root,
      recursive: f.recursive,
      batchSize: STAT_BATCH,
      isPruned: (rel) => f.filter.isPruned(rel),
      onInvalidName: (raw) => this.invalidName(f, raw),
      onDirError: (dir, err) => {
        if (err.code !== 'ENOENT') this.o.candidates.warnOnce(dir, err, 'cannot read a folder inside a watched folder; skipped');
      },
      aborted: () => this.o.closed() || f.gone,
    });
  }

  private async considerBatch(f: FolderState, batch: ScanEntry[]): Promise<void> {
    const results = await Promise.all(batch.map((e) => this.considerScanned(f, e)));
    for (let i = 0; i < batch.length; i++) {
      // No room: wait until stability checks or the sink free some, then retry this file.
      while (results[i] === 'full' && !this.o.closed() && !f.gone) {
        await this.o.room.wait();
        results[i] = await this.considerScanned(f, batch[i] as ScanEntry);
      }
    }
  }

  private considerScanned(f: FolderState, e: ScanEntry): Promise<ConsiderResult> | ConsiderResult {
    if (e.kind === 'file') {
      return this.o.look.consider(f, e.path).catch((err: unknown) => {
        this.o.log.error({ path: e.path, err }, 'looking at a scanned file failed; continuing');
        return 'ok' as const;
      });
    }
    if (f.filter.isDataFile(e.rel)) {
      this.o.log.debug(
        { path: e.path },
        e.kind === 'symlink'
          ? 'symlink in a watched folder is not a data file; skipped'
          : 'not a regular file (FIFO, socket or device); skipped',
      );
    }
    return 'ok';
  }

  /** One error per bad name for the life of the watcher (rescans see it again every time). */
  private invalidName(f: FolderState, raw: Buffer): void {
    const shown = escapePath(raw);
    if (this.badNames.has(shown)) return;
    if (this.badNames.size < LOG_ONCE_CAP) this.badNames.add(shown);
    this.o.counters.invalidNames++;
    this.o.log.error(
      { folder: f.root, path: shown },
      'file name is not valid UTF-8: skipped (rename it to a UTF-8 name to have it processed)',
    );
  }
}
