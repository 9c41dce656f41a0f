import { FallbackStore, type FallbackOptions } from './fallback/fallback-store.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { CheckpointStore } from './types.js';

export type OpenStoreOptions = SqliteStoreOptions;

export type { FallbackOptions, ModeInfo } from './fallback/fallback-store.js';
export { FallbackStore } from './fallback/fallback-store.js';
export { readFallbackStates, type FallbackState } from './fallback/state-files.js';

/**
 * Pick the store for a `database` setting. Today: a file path means SQLite. (PostgreSQL URLs
 * are recognised so the error is clear rather than a file named "postgres:..." appearing.)
 *
 * With `fallback` (the daemon): a FallbackStore around the SQLite store, which keeps working
 * when the database is locked or corrupt (memory + journal + claim markers, salvage) and says
 * so through `mode()`. It replays journals left by crashed processes before it returns.
 * Without it (the CLI, CheckpointManager): the plain SQLite store, whose errors surface as they are.
 */
export function openStore(database: string, opts: OpenStoreOptions & { fallback: FallbackOptions }): FallbackStore;
export function openStore(database: string, opts?: OpenStoreOptions): CheckpointStore;
export function openStore(database: string, opts: OpenStoreOptions & { fallback?: FallbackOptions } = {}): CheckpointStore {
  if (/^postgres(ql)?:\/\//i.test(database)) {
    throw new Error('a PostgreSQL database URL was given, but this build of ckpt supports only SQLite files');
  }
  if (opts.fallback) return new FallbackStore(database, opts);
  return new SqliteStore(database, opts);
}
