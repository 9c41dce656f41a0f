import { sql as m0001 } from './0001_schema.js';
import { sql as m0002 } from './0002_views.js';

/**
 * Numbered migrations; `PRAGMA user_version` holds the number of the last one applied.
 * Append only: never edit a migration that has shipped.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  { version: 1, name: 'schema', sql: m0001 },
  { version: 2, name: 'views', sql: m0002 },
];
