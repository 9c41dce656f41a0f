import { sql as m0001 } from './0001_schema.js';
import { sql as m0002 } from './0002_views.js';
import { sql as m0003 } from './0003_failure_index.js';
import { sql as m0004 } from './0004_retention_index.js';

/**
 * Numbered migrations; `PRAGMA user_version` holds the number of the last one applied.
 * Append only: never edit a migration that has shipped.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  { version: 1, name: 'schema', sql: m0001 },
  { version: 2, name: 'views', sql: m0002 },
  { version: 3, name: 'failure index', sql: m0003 },
  { version: 4, name: 'retention index', sql: m0004 },
];
