/**
 * Brings a schema up to date. Safe when several daemons on several hosts start at the same
 * moment: everything happens in one transaction that first takes a transaction-scoped advisory
 * lock keyed on the schema name, so the others wait, then find the work done.
 */
import type pg from 'pg';
import { PG_MIGRATIONS, type PgMigration } from './migrations/index.js';

/** A PostgreSQL identifier ckpt accepts for its schema (the config checks the same rule). */
export const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function quoteSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(`invalid PostgreSQL schema name ${JSON.stringify(schema)}: letters, digits and _ only, at most 63, not starting with a digit`);
  }
  // Quoted, so the name is used exactly as configured (an unquoted MySchema would be myschema).
  return `"${schema}"`;
}

/** First half of every advisory lock key ckpt takes: hashtext('ckpt') computed by the server. */
export const LOCK_NAMESPACE = 'ckpt';
export const MIGRATIONS_TABLE = 'ckpt_schema_migrations';

export interface MigrateResult {
  from: number;
  to: number;
  applied: number[];
}

/**
 * Apply the missing migrations on `client` (which must not be inside a transaction).
 * Throws a plain Error when the schema is newer than this build knows.
 */
export async function migrate(client: pg.ClientBase, schema: string, migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<MigrateResult> {
  const s = quoteSchema(schema);
  const latest = migrations[migrations.length - 1]?.version ?? 0;
  // Fast path without a lock or a transaction: an up-to-date schema (every start but the first).
  const seen = await currentVersion(client, schema, s);
  if (seen === latest) return { from: seen, to: seen, applied: [] };
  if (seen !== null && seen > latest) throw tooNew(schema, seen, latest);

  await client.query('BEGIN');
  try {
    // Two int4 halves: ckpt's namespace and the schema, so two ckpt schemas in one database
    // migrate independently and other applications' advisory locks are not touched.
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext('migrate:' || $2))", [LOCK_NAMESPACE, schema]);
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    // CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege even when the schema exists:
    // look first, so that a role allowed only to use an existing schema can start.
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.${MIGRATIONS_TABLE} (
         version    INTEGER PRIMARY KEY,
         name       TEXT NOT NULL,
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
       )`,
    );
    const from = (await currentVersion(client, schema, s)) ?? 0;
    if (from > latest) throw tooNew(schema, from, latest);
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= from) continue;
      await client.query(m.sql(s));
      await client.query(`INSERT INTO ${s}.${MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
    return { from, to: latest, applied };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The last applied migration, or null when the schema or the migrations table is missing. */
export async function currentVersion(client: pg.ClientBase, schema: string, s = quoteSchema(schema)): Promise<number | null> {
  const t = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${s}.${MIGRATIONS_TABLE}`]);
  if (!t.rows[0]?.t) return null;
  const r = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${s}.${MIGRATIONS_TABLE}`);
  return r.rows[0]?.v ?? 0;
}

/** A plain Error, as for SQLite: not a fault to ride out in degraded mode, but an operator's job. */
function tooNew(schema: string, found: number, latest: number): Error {
  return new Error(`PostgreSQL schema ${schema} is at version ${found}, newer than this ckpt knows (${latest}): upgrade ckpt`);
}
