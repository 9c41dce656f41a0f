import { sql as m0001 } from './0001_schema.js';
import { sql as m0002 } from './0002_views.js';
import { sql as m0003 } from './0003_failure_index.js';
import { sql as m0004 } from './0004_retention_index.js';

export interface PgMigration {
  version: number;
  name: string;
  /** The statements, given the quoted schema name. */
  sql: (schema: string) => string;
}

/**
 * Numbered PostgreSQL migrations; `ckpt_schema_migrations` records each one applied. Append
 * only: never edit a migration that has shipped. Numbers follow the SQLite migrations where a
 * migration exists for both stores.
 */
export const PG_MIGRATIONS: readonly PgMigration[] = [
  { version: 1, name: 'schema', sql: m0001 },
  { version: 2, name: 'views', sql: m0002 },
  { version: 3, name: 'failure index', sql: m0003 },
  { version: 4, name: 'retention index', sql: m0004 },
];
