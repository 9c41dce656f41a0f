/**
 * The command-handler examples in config/examples/: sink-sqlite3.sh (the sqlite3 shell) and
 * sink-psql.sh (psql) load a CSV into a sink with the run's idempotency key in one transaction.
 * Run for real: twice in a row, twice at once, and (SQLite) as the handler of a real daemon.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { idempotencyKey } from '../../src/store/idempotency.js';
import { countStatus, killDaemons, rows, setup, startDaemon, started, drop } from '../helpers/daemon.js';
import { PG_PASSWORD, PG_USER, type PgCluster, pgClusterForTests } from '../helpers/postgres.js';
import { REPO, run } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const SQLITE_SCRIPT = path.join(REPO, 'config/examples/sink-sqlite3.sh');
const PSQL_SCRIPT = path.join(REPO, 'config/examples/sink-psql.sh');

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

/** A CSV of n readings under a name with a quote and a space in it. */
function csv(dir: string, n: number, name = "sensor's batch.csv"): string {
  const file = path.join(dir, name);
  const lines = ['sensor,ts,value'];
  for (let i = 0; i < n; i++) lines.push(`s${i % 7},2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z,${i}.5`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function ckptEnv(file: string, attempt: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CKPT_FILE: file,
    CKPT_VERSION: '1',
    CKPT_ATTEMPT: String(attempt),
    CKPT_WORKER_ID: `host:${attempt}`,
    CKPT_IDEMPOTENCY_KEY: idempotencyKey(file, 1),
  };
}

const lastLine = (s: string) => s.trim().split('\n').pop();

describe('config/examples/sink-sqlite3.sh', () => {
  function readings(db: string): { n: number; sum: number } {
    const d = new Database(db, { readonly: true });
    try {
      return d.prepare('SELECT count(*) AS n, sum(value) AS sum FROM readings').get() as { n: number; sum: number };
    } finally {
      d.close();
    }
  }

  it('loads the rows with the key; a second run writes nothing and prints the first stats', async () => {
    const dir = tmpDir('ckpt-sink-sh-');
    const db = path.join(dir, 'sink.db');
    const file = csv(dir, 5);
    const first = await run(SQLITE_SCRIPT, [db, file], { env: ckptEnv(file, 1) });
    expect(first.code, first.stderr).toBe(0);
    expect(lastLine(first.stdout)).toBe('{"total":5,"filtered":0,"persisted":5}');
    const second = await run(SQLITE_SCRIPT, [db, file], { env: ckptEnv(file, 2) });
    expect([second.code, lastLine(second.stdout)]).toEqual([0, '{"total":5,"filtered":0,"persisted":5}']);
    expect(second.stderr).toContain('already applied');
    expect(readings(db)).toEqual({ n: 5, sum: 12.5 });
    const d = new Database(db, { readonly: true });
    expect(d.prepare('SELECT file_url, version, attempt FROM ckpt_applied').all()).toEqual([{ file_url: file, version: 1, attempt: 1 }]);
    d.close();
  });

  it('two runs of one key at once: the rows are there once and both print the same stats', async () => {
    const dir = tmpDir('ckpt-sink-sh-');
    const db = path.join(dir, 'sink.db');
    const file = csv(dir, 3000);
    const [a, b] = await Promise.all([run(SQLITE_SCRIPT, [db, file], { env: ckptEnv(file, 1) }), run(SQLITE_SCRIPT, [db, file], { env: ckptEnv(file, 2) })]);
    expect([a.code, b.code], a.stderr + b.stderr).toEqual([0, 0]);
    expect(lastLine(a.stdout)).toBe('{"total":3000,"filtered":0,"persisted":3000}');
    expect(lastLine(b.stdout)).toBe(lastLine(a.stdout));
    expect(readings(db).n).toBe(3000);
  });

  it('as the command handler of a real daemon: files completed with the stats, rows loaded once', async () => {
    const sinkDir = tmpDir('ckpt-sink-sh-');
    const db = path.join(sinkDir, 'sink.db');
    const s = setup({ handler: { command: [SQLITE_SCRIPT, db, '{path}'] } });
    const d = startDaemon(s);
    await started(d);
    for (let i = 0; i < 3; i++) drop(s.inbox, `b${i}.csv`, fs.readFileSync(csv(sinkDir, 4 + i, `src${i}.csv`)));
    await waitFor(() => countStatus(s.db, 'completed') === 3, { timeoutMs: 30_000, message: '3 files completed' });
    expect(rows(s.db, 'SELECT records_total AS t, records_persisted AS p FROM file_checkpoints ORDER BY file_url')).toEqual([
      { t: 4, p: 4 },
      { t: 5, p: 5 },
      { t: 6, p: 6 },
    ]);
    expect(readings(db).n).toBe(15);
  });
});

describe('config/examples/sink-psql.sh', () => {
  let cluster: PgCluster | null = null;
  beforeAll(async () => {
    cluster = await pgClusterForTests('sink-psql.sh');
  }, 60_000);
  afterAll(async () => cluster?.destroy());

  const pgEnv = (): NodeJS.ProcessEnv => ({ PGHOST: '127.0.0.1', PGPORT: String(cluster!.port), PGDATABASE: 'postgres', PGUSER: PG_USER, PGPASSWORD: PG_PASSWORD });
  const readings = async () => (await cluster!.sql('SELECT count(*)::int AS n, sum(value)::float8 AS sum FROM readings')).rows[0] as { n: number; sum: number };

  it('loads the rows with the key; a second run writes nothing and prints the first stats', async (t) => {
    if (!cluster) return t.skip();
    const dir = tmpDir('ckpt-sink-psql-');
    const file = csv(dir, 5);
    const first = await run(PSQL_SCRIPT, [file], { env: { ...ckptEnv(file, 1), ...pgEnv() } });
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(lastLine(first.stdout)!)).toEqual({ total: 5, filtered: 0, persisted: 5 });
    const second = await run(PSQL_SCRIPT, [file], { env: { ...ckptEnv(file, 2), ...pgEnv() } });
    expect([second.code, lastLine(second.stdout)]).toEqual([0, lastLine(first.stdout)]);
    expect(second.stderr).toContain('already applied');
    expect(await readings()).toEqual({ n: 5, sum: 12.5 });
    const applied = await cluster.sql('SELECT file_url, version::int AS version, attempt FROM ckpt_applied');
    expect(applied.rows).toEqual([{ file_url: file, version: 1, attempt: 1 }]);
  });

  it('two runs of one key at once: the rows are there once and both print the same stats', async (t) => {
    if (!cluster) return t.skip();
    await cluster.sql('TRUNCATE readings, ckpt_applied');
    const dir = tmpDir('ckpt-sink-psql-');
    const file = csv(dir, 3000);
    const [a, b] = await Promise.all([
      run(PSQL_SCRIPT, [file], { env: { ...ckptEnv(file, 1), ...pgEnv() } }),
      run(PSQL_SCRIPT, [file], { env: { ...ckptEnv(file, 2), ...pgEnv() } }),
    ]);
    expect([a.code, b.code], a.stderr + b.stderr).toEqual([0, 0]);
    expect(JSON.parse(lastLine(a.stdout)!)).toEqual({ total: 3000, filtered: 0, persisted: 3000 });
    expect(lastLine(b.stdout)).toBe(lastLine(a.stdout));
    expect((await readings()).n).toBe(3000);
  });
});
