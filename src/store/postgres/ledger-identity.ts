/**
 * The identity of a PostgreSQL ledger for folder ownership (src/watch/folder-ownership.ts):
 * the database's name, the schema, and when the schema's first migration was applied (in
 * microseconds). Every host reaches the same three values whatever name or address it uses
 * for the server, and a schema dropped and created again is a new ledger.
 */
import type { LedgerIdentity } from '../../watch/folder-ownership.js';
import { MIGRATIONS_TABLE, quoteSchema } from './migrate.js';
import { PostgresStore } from './postgres-store.js';

/** Read once at start (the daemon needs the server then anyway); throws when it cannot be read. */
export async function postgresLedger(db: { url: string; schema: string }, connectTimeoutMs: number): Promise<LedgerIdentity> {
  const store = new PostgresStore({ url: db.url, schema: db.schema, connectTimeoutMs, maxConnections: 1, applicationName: 'ckpt-ledger-id' });
  try {
    const r = await store.pool.query<{ db: string; created: string }>(
      `SELECT current_database() AS db, (extract(epoch FROM applied_at) * 1000000)::bigint::text AS created
         FROM ${quoteSchema(db.schema)}.${MIGRATIONS_TABLE} WHERE version = 1`,
    );
    const row = r.rows[0];
    if (row === undefined) throw new Error(`schema ${db.schema} has no first migration recorded`);
    const created = new Date(Number(BigInt(row.created) / 1000n)).toISOString();
    return {
      id: `postgres:${row.db}/${db.schema}/${row.created}`,
      describe: `PostgreSQL ${store.target}, schema ${db.schema} (created ${created})`,
    };
  } finally {
    await store.close();
  }
}
