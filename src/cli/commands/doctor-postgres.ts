/**
 * `ckpt doctor` against PostgreSQL: can this host reach the server and log in, is the schema
 * migrated, are there claims whose lease ran out, and which ckpt processes have gone quiet.
 *
 * Reads only, like the SQLite checks: it connects with the store's own pool settings but never
 * runs the migrations (PostgresStore.ensureReady) and writes nothing. What a person must act
 * on is a FAIL: the server refuses us or cannot be reached, the schema is newer than this ckpt,
 * or a live process says it is degraded.
 */
import type pg from 'pg';
import { PG_MIGRATIONS, PostgresStore, classifyPgError, currentVersion, pgErrorCode } from '../../store/postgres/index.js';
import type { Check, Level } from './doctor.js';
import { deadFilesCheck } from './doctor-handler.js';
import { staleAfterMs } from './status.js';

interface PgTarget {
  url: string;
  schema: string;
}

export async function postgresChecks(db: PgTarget, opts: { lockTimeoutMs: number; leaseMs: number; now: number; configPath: string }): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (name: string, level: Level, message: string) => checks.push({ name, level, message });
  const store = new PostgresStore({ url: db.url, schema: db.schema, connectTimeoutMs: opts.lockTimeoutMs, maxConnections: 1, applicationName: 'ckpt-doctor' });
  try {
    const client = await store.pool.connect();
    try {
      const version = String((await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? '?');
      add('server', 'ok', `${store.target}, PostgreSQL ${version}`);
      const latest = PG_MIGRATIONS[PG_MIGRATIONS.length - 1]?.version ?? 0;
      const seen = await currentVersion(client, db.schema);
      if (seen === null) {
        add('schema', 'warn', `no ckpt ledger in schema ${db.schema} yet (ckpt creates it at its first run; is "schema" the one the daemons use?)`);
        return checks;
      }
      if (seen > latest) add('schema', 'fail', `schema ${db.schema} is at version ${seen}, newer than this ckpt knows (${latest}): upgrade ckpt on this host`);
      else if (seen < latest) add('schema', 'warn', `schema ${db.schema} is at version ${seen}; this ckpt migrates it to ${latest} at its next start`);
      else add('schema', 'ok', `schema ${db.schema}, version ${seen}`);

      await durabilityCheck(client, add);

      const s = `"${db.schema}"`;
      const nowIso = new Date(opts.now).toISOString();
      const expired = Number(
        (await client.query<{ n: number }>(`SELECT count(*) AS n FROM ${s}.file_checkpoints WHERE status = 'processing' AND due_at <= $1::timestamptz`, [nowIso])).rows[0]?.n ?? 0,
      );
      if (expired > 0) add('leases', 'warn', `${expired} claim(s) whose lease ran out: their workers stopped renewing (crashed, hung, or cut off); the next claim on any host takes them over`);
      else add('leases', 'ok', 'no expired claims');
      const dead = Number((await client.query<{ n: number }>(`SELECT count(*) AS n FROM ${s}.file_checkpoints WHERE status = 'dead'`)).rows[0]?.n ?? 0);
      checks.push(deadFilesCheck(dead, opts.configPath));

      const workers = (await client.query<{ worker_id: string; host: string; pid: number; heartbeat_at: string; mode: string; mode_reason: string | null }>(
        `SELECT worker_id, host, pid, heartbeat_at, mode, mode_reason FROM ${s}.ckpt_workers ORDER BY worker_id`,
      )).rows;
      const stale = staleAfterMs(opts.leaseMs);
      const live = workers.filter((w) => opts.now - Date.parse(w.heartbeat_at) <= stale);
      const quiet = workers.filter((w) => !live.includes(w));
      if (workers.length === 0) add('workers', 'ok', 'no ckpt process is registered');
      else add('workers', 'ok', `${live.length} live: ${live.map((w) => w.worker_id).join(', ') || 'none'}`);
      if (quiet.length > 0) {
        add('workers', 'warn', `${quiet.length} without a heartbeat for more than ${Math.round(stale / 1000)} s (stopped without deregistering, or hung): ${quiet.map((w) => w.worker_id).join(', ')}`);
      }
      for (const w of live.filter((x) => x.mode === 'degraded')) add('mode', 'fail', `${w.worker_id} on ${w.host} is degraded: ${w.mode_reason ?? '?'}`);
    } finally {
      client.release();
    }
  } catch (err) {
    const cls = classifyPgError(err);
    const code = pgErrorCode(err);
    // Never the URL: the error text of pg does not hold it, and the target is host:port/db only.
    const what = cls === 'unavailable' ? 'cannot reach the server' : cls === 'broken' ? 'the server refuses ckpt' : 'cannot use the server';
    add('server', 'fail', `${store.target}: ${what}: ${(err as Error).message}${code ? ` (${code})` : ''}`);
  } finally {
    await store.close();
  }
  return checks;
}

/**
 * ckpt moves or deletes a file right after its outcome's COMMIT returns, so it counts on that
 * commit being on the server's disk: `synchronous_commit` not `off`, and `fsync` on, as ckpt's
 * own session sees them (a role or database setting overrides the server's). Only a warning
 * when they are not: nothing is wrong until the server crashes (docs/power-loss.md).
 */
async function durabilityCheck(client: pg.PoolClient, add: (name: string, level: Level, message: string) => void): Promise<void> {
  const r = (await client.query<{ sc: string; f: string }>("SELECT current_setting('synchronous_commit') AS sc, current_setting('fsync') AS f")).rows[0];
  const off: string[] = [];
  if (r?.sc === 'off') off.push('synchronous_commit is off');
  if (r?.f === 'off') off.push('fsync is off');
  if (off.length > 0) {
    add('durability', 'warn', `${off.join(' and ')} for ckpt's session: a server crash can take back committed outcomes whose files ckpt has already moved or deleted (they then go dead as vanished); set it on for ckpt's role or database`);
  }
}
