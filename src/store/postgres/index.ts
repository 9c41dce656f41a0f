/**
 * The PostgreSQL checkpoint store, for several ckpt daemons on several hosts sharing one ledger.
 * See postgres-store.ts for how it differs from SQLite, pg-errors.ts for what an error means.
 */
export { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';
export { classifyPgError, pgErrorCode, poisonsConnection, toPgStoreError, type PgErrorClass } from './pg-errors.js';
export { currentVersion, migrate, quoteSchema, SCHEMA_NAME, MIGRATIONS_TABLE, type MigrateResult } from './migrate.js';
export { PG_MIGRATIONS, type PgMigration } from './migrations/index.js';
export { checkUrl, describeTarget, type PoolOptions } from './pool.js';
