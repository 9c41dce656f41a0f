/**
 * What a FolderWatcher is given (its options, resolved once into settings) and what it reports
 * (its stats). The parts in the other watch/ files take the resolved settings.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { isNetworkFileSystem } from '../mounts.js';
import type { DiscoveredFile } from '../store/types.js';

export interface WatchFolder {
  /** The folder to watch; made absolute with path.resolve. */
  dir: string;
  /** picomatch globs (see filter.ts); empty means every name. */
  include: readonly string[];
  exclude: readonly string[];
  fileType: string;
  /** true: always stat-poll; 'auto': poll on a network file system (nfs, cifs, sshfs...). */
  poll: boolean | 'auto';
  /** ".done": `x.csv` is ready only once `x.csv.done` exists beside it. */
  readyMarker: string | null;
  /** Watch sub-folders too (default true). */
  recursive?: boolean;
  /** 'stability': never ready by kernel events, only by the stability timer (default 'auto'). */
  readiness?: 'auto' | 'stability';
}

export interface FolderWatcherOptions {
  folders: readonly WatchFolder[];
  /** A file is ready when two stats this far apart show no change. */
  stableMs: number;
  /** Period of the full rescan that catches whatever events missed. */
  rescanMs: number;
  /** Files waiting for stability or for the sink, at most (default 100,000). */
  maxTracked?: number;
  /** Files per sink call (default 512). */
  batchSize?: number;
  /** Remembered handed-on fingerprints, so rescans do not re-send unchanged files (default 250,000). */
  maxHanded?: number;
  /** Stat-poll interval of a polled folder (default stableMs / 2, within 100..1000 ms). */
  pollIntervalMs?: number;
  /** How often each folder's root is checked for deletion or a remount (default min(1000, rescanMs)). */
  rootCheckMs?: number;
  logger: Logger;
  /** Receives ready files; one call at a time. If it throws, the files are offered again later. */
  sink: (files: DiscoveredFile[]) => Promise<void>;
  /** Monotonic clock in ms for stability deadlines (default performance.now). */
  now?: () => number;
  /** Decides `poll: 'auto'` (default isNetworkFileSystem from src/mounts.ts). */
  isNetworkFs?: (dir: string) => boolean;
}

export interface WatcherStats {
  /** Files waiting for their stable period. */
  tracked: number;
  /** Stable files waiting for their ready marker. */
  awaitingMarker: number;
  /** Ready files not yet accepted by the sink. */
  queued: number;
  /** Files the sink accepted (a file handed twice counts twice). */
  handed: number;
  /** Events dropped because the tracker was full (each one schedules a rescan). */
  dropped: number;
  /** Folder scans completed. */
  scans: number;
  sinkFailures: number;
  /** Distinct names skipped because they are not valid UTF-8. */
  invalidNames: number;
  /** Times a folder's watcher was re-created (deleted and recreated, remounted) or fell back to scans (ENOSPC). */
  restarts: number;
  /** Watched folders that do not exist right now (waited for). */
  missingFolders: number;
}

/** The counted part of the stats; each part of the watcher adds to its own counters. */
export type WatchCounters = Pick<WatcherStats, 'handed' | 'dropped' | 'scans' | 'sinkFailures' | 'invalidNames' | 'restarts'>;

/** The options with every default filled in. */
export interface WatchSettings {
  readonly stableMs: number;
  readonly rescanMs: number;
  readonly maxTracked: number;
  readonly batchSize: number;
  readonly maxHanded: number;
  readonly pollIntervalMs: number;
  readonly rootCheckMs: number;
  readonly now: () => number;
  readonly isNetworkFs: (dir: string) => boolean;
}

export function resolveSettings(opts: FolderWatcherOptions): WatchSettings {
  if (!(opts.stableMs >= 0)) throw new RangeError(`stableMs must be >= 0, got ${opts.stableMs}`);
  if (!(opts.rescanMs > 0)) throw new RangeError(`rescanMs must be > 0, got ${opts.rescanMs}`);
  return {
    stableMs: opts.stableMs,
    rescanMs: opts.rescanMs,
    maxTracked: Math.max(1, opts.maxTracked ?? 100_000),
    batchSize: Math.max(1, opts.batchSize ?? 512),
    // 230 bytes of heap an entry (handed-fingerprints.ts says why they are remembered at all).
    maxHanded: Math.max(0, opts.maxHanded ?? 250_000),
    // Polling costs a stat per file per interval (docs/stack-behaviour.md: interval 100 kept one core busy
    // with 20k idle files), so poll no faster than needed to see a file within stableMs.
    pollIntervalMs: opts.pollIntervalMs ?? Math.min(1000, Math.max(100, Math.round(opts.stableMs / 2))),
    rootCheckMs: opts.rootCheckMs ?? Math.min(1000, opts.rescanMs),
    now: opts.now ?? (() => performance.now()),
    isNetworkFs: opts.isNetworkFs ?? isNetworkFileSystem,
  };
}
