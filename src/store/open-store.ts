import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { CheckpointStore } from './types.js';

export type OpenStoreOptions = SqliteStoreOptions;

/**
 * Pick the store for a `database` setting. Today: a file path means SQLite. (PostgreSQL URLs
 * are recognised so the error is clear rather than a file named "postgres:..." appearing.)
 */
export function openStore(database: string, opts: OpenStoreOptions = {}): CheckpointStore {
  if (/^postgres(ql)?:\/\//i.test(database)) {
    throw new Error('a PostgreSQL database URL was given, but this build of ckpt supports only SQLite files');
  }
  return new SqliteStore(database, opts);
}
