import type { Logger } from 'pino';
import type { SqliteStoreOptions } from '../sqlite-store.js';

/*
 * The FallbackStore's options, their defaults, and what it reports about its mode.
 */

/**
 * Probe period while degraded. Each probe takes and drops the write lock with busy timeout 0
 * (well under a millisecond when free), so once a second costs nothing, and it bounds the
 * time from the lock's release to the journal's replay at about a second, far inside the
 * 10 s goal. Not in the config yet.
 */
export const DEFAULT_PROBE_MS = 1_000;
/** While degraded, an error-level line this often says so. */
export const DEGRADED_LOG_MS = 60_000;
/**
 * In normal mode, a fresh connection runs quick_check this often. The daemon's own connection
 * would not notice a file damaged underneath it for a long time: its page cache (16 MB by
 * default) still holds the good pages. quick_check took about 65 ms on a 55 MB file (docs/stack-behaviour.md).
 * Proposed config key: `healthCheckMs`.
 */
export const DEFAULT_HEALTH_CHECK_MS = 60_000;
/**
 * A snapshot of the database this often (see snapshot.ts): the file's whole size written once
 * an hour (1.3 GB a day for a 55 MB file: harmless even for an SD card), in exchange for (c)/(d)
 * corruption losing at most the last hour. Proposed config key: `snapshotMs` (0 = off).
 */
export const DEFAULT_SNAPSHOT_MS = 3_600_000;

export interface ModeInfo {
  mode: 'normal' | 'degraded';
  /** Epoch ms the current mode began (null: normal since start). */
  since: number | null;
  reason: string | null;
  /** Why degraded: the database is locked by someone else, or broken (corrupt, I/O, full, replaced). */
  kind: 'locked' | 'broken' | null;
}

export interface FallbackOptions {
  /** Journals, claim markers, salvage work: default `<database>.fallback` beside the database. */
  dir?: string;
  /** Probe period while degraded (default 1000 ms). */
  probeMs?: number;
  logger?: Logger;
  /** This process's worker id (default hostname:pid); names the journal. */
  workerId?: string;
  /** Clock for mode times and log lines (tests); store calls still take `now` from the caller. */
  clock?: () => number;
  /** Period of the "still degraded" error line (default 60 s). */
  degradedLogMs?: number;
  /** Check the file with quick_check at open (default true): a bad page is found before work starts. */
  checkAtOpen?: boolean;
  /** quick_check through a fresh connection this often in normal mode (default 60 s; 0: never). */
  healthCheckMs?: number;
  /** Snapshot period (default 1 h; 0: no snapshots). */
  snapshotMs?: number;
  /**
   * This host's path for a name the ledger stores (per-host `pathPrefixes`; default: the same).
   * The store sees the shared names; the one place it looks at the disk (re-discovery after
   * recovery) must look where this host has the file.
   */
  localPath?: (stored: string) => string;
}

export interface FallbackStoreOptions extends SqliteStoreOptions {
  fallback?: FallbackOptions;
}
