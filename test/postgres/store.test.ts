/**
 * The PostgreSQL store against a real server: migrations under concurrent start-up, what the
 * store reports when the server is unreachable, refuses us, or restarts, and the locks that
 * protect discovery from a concurrent purge. The server is stopped and started in the last
 * tests, so they stay last.
 */
import { inspect } from 'node:util';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS_TABLE, PG_MIGRATIONS, PostgresStore, currentVersion, migrate } from '../../src/store/postgres/index.js';
import { StoreUnavailableError } from '../../src/store/sqlite-errors.js';
import { PG_PASSWORD, freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const cluster = await pgClusterForTests('postgres store');
const open: PostgresStore[] = [];
const clients: pg.Client[] = [];
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const LATEST = PG_MIGRATIONS[PG_MIGRATIONS.length - 1]!.version;

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});
afterAll(async () => {
  await cluster?.destroy();
});

function track(s: PostgresStore): PostgresStore {
  open.push(s);
  return s;
}

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: cluster!.url() });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

/** Everything an operator or a logger could ever see of an error. */
function everything(err: unknown): string {
  return `${String(err)} ${(err as Error).stack ?? ''} ${inspect(err, { depth: 5 })} ${JSON.stringify(err)}`;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const file = (name: string, fp = 'fp1') => ({ fileUrl: `/shared/${name}`, fileType: 'csv', mtimeMs: T0 - 1000, size: 10, fingerprint: fp });

describe.skipIf(cluster === null)('postgres store', () => {
  it('six daemons starting at once on a fresh schema: migrated exactly once, all of them work', async () => {
    const schema = freshSchema('boot');
    const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresStore.connect({ url: cluster!.url(), schema, maxConnections: 1 })));
    stores.forEach(track);
    const rows = await cluster!.sql(`SELECT version, name FROM "${schema}".${MIGRATIONS_TABLE} ORDER BY version`);
    expect(rows.rows).toEqual(PG_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    const results = await Promise.all(stores.map((s, i) => s.discover([file('same'), file(`own${i}`)], T0)));
    expect(results.reduce((a, r) => a + r.inserted, 0)).toBe(7);
    expect((await stores[0]!.counts()).pending).toBe(7);
    // Up to date: nothing to do, and no lock taken.
    const c = await client();
    expect(await migrate(c, schema)).toEqual({ from: LATEST, to: LATEST, applied: [] });
  });

  it('creates the schema it is given, quoted exactly, and keeps schemas apart', async () => {
    const a = track(await PostgresStore.connect({ url: cluster!.url(), schema: 'Mixed_Case_A' }));
    const b = track(await PostgresStore.connect({ url: cluster!.url(), schema: 'mixed_case_a' }));
    await a.discover([file('x')], T0);
    expect((await a.counts()).pending).toBe(1);
    expect((await b.counts()).pending).toBe(0);
    expect(() => new PostgresStore({ url: cluster!.url(), schema: 'bad-name; DROP TABLE x' })).toThrow(/invalid PostgreSQL schema name/);
  });

  it('refuses a schema migrated by a newer ckpt', async () => {
    const schema = freshSchema('newer');
    track(await PostgresStore.connect({ url: cluster!.url(), schema }));
    await cluster!.sql(`INSERT INTO "${schema}".${MIGRATIONS_TABLE} (version, name) VALUES ($1, 'from the future')`, [LATEST + 1]);
    const err = await rejection(PostgresStore.connect({ url: cluster!.url(), schema }));
    expect(err).not.toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/newer than this ckpt knows/);
    const c = await client();
    expect(await currentVersion(c, schema)).toBe(LATEST + 1);
  });

  it('a wrong password or a missing database is broken; the password never shows', async () => {
    const bad = await rejection(PostgresStore.connect({ url: cluster!.url('postgres', { password: 'wrong-pw-4411' }), schema: 'x' }));
    expect(bad).toBeInstanceOf(StoreUnavailableError);
    expect(bad).toMatchObject({ kind: 'broken', code: '28P01' });
    expect(everything(bad)).not.toMatch(/wrong-pw-4411/);

    const nodb = await rejection(PostgresStore.connect({ url: cluster!.url('no_such_db'), schema: 'x' }));
    expect(nodb).toMatchObject({ kind: 'broken', code: '3D000' });
    expect(everything(nodb)).not.toContain(PG_PASSWORD);
    expect((nodb as Error).message).toContain(`127.0.0.1:${cluster!.port}/no_such_db`);
  });

  it('nothing listening: connect and every call of a lazily built store are unavailable (locked)', async () => {
    const port = cluster!.port === 1 ? 2 : 1; // a privileged port nobody listens on here
    const url = `postgres://ckpt:${PG_PASSWORD}@127.0.0.1:${port}/postgres`;
    const err = await rejection(PostgresStore.connect({ url, schema: 'x', connectTimeoutMs: 2_000 }));
    expect(err).toMatchObject({ kind: 'locked', code: 'ECONNREFUSED' });
    expect(everything(err)).not.toContain(PG_PASSWORD);
    const lazy = track(new PostgresStore({ url, schema: 'x', connectTimeoutMs: 2_000 }));
    expect(await rejection(lazy.counts())).toMatchObject({ kind: 'locked' });
    expect(await rejection(lazy.claim(1, { workerId: 'w', leaseMs: 1000, now: T0 }))).toMatchObject({ kind: 'locked' });
  });

  it('a statement stuck behind another session\'s lock times out as unavailable (locked)', async () => {
    const schema = freshSchema('stuck');
    const s = track(await PostgresStore.connect({ url: cluster!.url(), schema, statementTimeoutMs: 300 }));
    await s.discover([file('a')], T0);
    const [c] = await s.claim(1, { workerId: 'w', leaseMs: 30_000, now: T0 });
    const other = await client();
    await other.query('BEGIN');
    await other.query(`SELECT 1 FROM "${schema}".file_checkpoints WHERE file_url = $1 FOR UPDATE`, [c!.fileUrl]);
    const err = await rejection(s.setHandlerPid(c!, 123));
    expect(err).toMatchObject({ kind: 'locked', code: '57014' });
    await other.query('ROLLBACK');
    expect(await s.setHandlerPid(c!, 123)).toBe('ok');
  });

  it('discovery waits while a purge holds the purge lock, so a purged file cannot slip back in', async () => {
    const schema = freshSchema('purgelock');
    const s = track(await PostgresStore.connect({ url: cluster!.url(), schema }));
    const holder = await client();
    await holder.query('BEGIN');
    await holder.query(`SELECT pg_advisory_xact_lock(hashtext('ckpt'), hashtext('purge:${schema}'))`);
    let done = false;
    const discovering = s.discover([file('a')], T0).then((r) => ((done = true), r));
    await waitFor(async () => {
      const r = await cluster!.sql(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
      return (r.rows[0] as { n: number }).n === 1;
    });
    expect(done).toBe(false);
    await holder.query('COMMIT');
    expect(await discovering).toMatchObject({ inserted: 1 });
  });

  it('a connection killed by the server (pg_terminate_backend) does not crash anything; the next call works', async () => {
    const schema = freshSchema('terminate');
    const seen: Error[] = [];
    const s = track(await PostgresStore.connect({ url: cluster!.url(), schema, onConnectionError: (e) => seen.push(e) }));
    await s.discover([file('a')], T0);
    await cluster!.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ckpt' AND pid <> pg_backend_pid()`);
    await waitFor(() => seen.length > 0, { message: 'the pool reported the idle connection lost' });
    expect((seen[0] as Error & { code?: string }).code).toBe('57P01');
    expect(await s.counts()).toMatchObject({ pending: 1 });
  });

  it('the server stopped and started again: unavailable (locked) meanwhile, then the same store works and nothing is lost', async () => {
    const schema = freshSchema('restart');
    const s = track(await PostgresStore.connect({ url: cluster!.url(), schema, connectTimeoutMs: 2_000 }));
    await s.discover([file('a'), file('b')], T0);
    const [c] = await s.claim(1, { workerId: 'host-a:1', leaseMs: 60_000, now: T0 });
    await cluster!.stopServer('fast');
    try {
      const errs = await Promise.all([
        rejection(s.counts()),
        rejection(s.claim(1, { workerId: 'host-a:1', leaseMs: 60_000, now: T0 })),
        rejection(s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 }, now: T0 + 1 }])),
      ]);
      for (const e of errs) expect(e).toMatchObject({ kind: 'locked' });
    } finally {
      await cluster!.startServer();
    }
    const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 };
    expect(await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 2 }])).toEqual(['ok']);
    expect(await s.counts()).toMatchObject({ pending: 1, completed: 1 });
  });
});
