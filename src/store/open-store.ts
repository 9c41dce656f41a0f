import { FallbackStore, type FallbackOptions } from './fallback/fallback-store.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { CheckpointStore } from './types.js';

export type OpenStoreOptions = SqliteStoreOptions;

export type { FallbackOptions, ModeInfo } from './fallback/fallback-store.js';
export { FallbackStore } from './fallback/fallback-store.js';
export { fallbackDirForConfig, readFallbackStates, type FallbackState } from './fallback/state-files.js';

/**
 * The store for a SQLite `database` path. (PostgreSQL URLs are recognised so the error is clear
 * rather than a file named "postgres:..." appearing: PostgreSQL is opened asynchronously, as
 * `PostgresStore.connect()` or, for the daemon, `FallbackStore.open(new PostgresPrimary(...))`.)
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
    throw new Error('openStore() opens SQLite files; open PostgreSQL with PostgresStore.connect() or FallbackStore.open(new PostgresPrimary(...))');
  }
  if (opts.fallback) return new FallbackStore(database, opts);
  return new SqliteStore(database, opts);
}
