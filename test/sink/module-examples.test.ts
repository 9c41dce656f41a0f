/**
 * The module-handler examples in config/examples/ (sink-sqlite-handler.mjs and
 * sink-postgres-handler.mjs, the ones docs/exactly-once-sinks.md shows) run by a real daemon:
 * rows loaded once with the stats in the ledger, a bad row filtered, a bad header dead, and a
 * file whose key is already in the sink completed with the stats recorded then, nothing written.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PostgresSink } from '../../src/sink/postgres-sink.js';
import { SqliteSink } from '../../src/sink/sqlite-sink.js';
import { idempotencyKey } from '../../src/store/idempotency.js';
import { countStatus, drop, killDaemons, rows, setup, startDaemon, started } from '../helpers/daemon.js';
import { type PgCluster, pgClusterForTests } from '../helpers/postgres.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

const FILES: Record<string, string> = {
  'a.csv': 'sensor,ts,value\ns1,2026-01-01T00:00:00Z,1\ns2,2026-01-01T00:00:01Z,2\n',
  'b.csv': 'sensor,ts,value\ns1,2026-01-01T00:00:02Z,4\ns2,2026-01-01T00:00:03Z,oops\ns3,2026-01-01T00:00:04Z,8\n',
  'c.csv': 'sensor;ts;value\n',
  // Its key is put into the sink before the file arrives, as if a run had committed and then crashed.
  'd.csv': 'sensor,ts,value\ns9,2026-01-01T00:00:05Z,100\n',
};

/** Runs the example under a daemon and checks the ledger; returns the ledger's stats per file. */
async function runExample(module: string, env: NodeJS.ProcessEnv, preApply: (run: { idempotencyKey: string; fileUrl: string; version: number }) => Promise<void>) {
  const s = setup({ handler: { module: path.join(REPO, 'config/examples', module) }, retry: { maxRetries: 0, baseDelayMs: 50, maxDelayMs: 50 } });
  const d = path.join(s.inbox, 'd.csv');
  await preApply({ idempotencyKey: idempotencyKey(d, 1), fileUrl: d, version: 1 });
  const daemon = startDaemon(s, [], env);
  await started(daemon);
  for (const [name, content] of Object.entries(FILES)) drop(s.inbox, name, content);
  await waitFor(() => countStatus(s.db, 'completed') === 3 && countStatus(s.db, 'dead') === 1, { timeoutMs: 30_000, message: '3 completed, 1 dead' });
  expect(rows(s.db, `SELECT file_url, version FROM file_checkpoints WHERE file_url LIKE '%d.csv'`)).toEqual([{ file_url: d, version: 1 }]);
  expect(daemon.lines.some((l) => l.msg === 'already in the sink: nothing written' && l.path === d)).toBe(true);
  return rows(s.db, 'SELECT substr(file_url, -5) AS f, status, records_total AS t, records_filtered AS fl, records_persisted AS p FROM file_checkpoints ORDER BY file_url');
}

const EXPECTED_LEDGER = [
  { f: 'a.csv', status: 'completed', t: 2, fl: 0, p: 2 },
  { f: 'b.csv', status: 'completed', t: 3, fl: 1, p: 2 },
  { f: 'c.csv', status: 'dead', t: 0, fl: 0, p: 0 },
  // The stats recorded by the earlier run, not this file's one row.
  { f: 'd.csv', status: 'completed', t: 7, fl: 0, p: 7 },
];
const EARLIER = { total: 7, filtered: 0, persisted: 7 };

describe('config/examples/sink-sqlite-handler.mjs', () => {
  it('under a real daemon: rows once, stats in the ledger, a key already in the sink writes nothing', async () => {
    const db = path.join(tmpDir('ckpt-sink-mod-'), 'readings.db');
    const sink = SqliteSink.open(db);
    sink.db.exec('CREATE TABLE readings (sensor TEXT NOT NULL, ts TEXT NOT NULL, value REAL)');
    const ledger = await runExample('sink-sqlite-handler.mjs', { READINGS_DB: db }, async (run) => void (await sink.once(run, () => EARLIER)));
    expect(ledger).toEqual(EXPECTED_LEDGER);
    expect(sink.db.prepare('SELECT sensor, value FROM readings ORDER BY ts').all()).toEqual([
      { sensor: 's1', value: 1 },
      { sensor: 's2', value: 2 },
      { sensor: 's1', value: 4 },
      { sensor: 's3', value: 8 },
    ]);
    sink.close();
    const check = new Database(db, { readonly: true });
    expect((check.prepare('SELECT count(*) AS n FROM ckpt_applied').get() as { n: number }).n).toBe(3);
    check.close();
  });
});

describe('config/examples/sink-postgres-handler.mjs', () => {
  let cluster: PgCluster | null = null;
  beforeAll(async () => {
    cluster = await pgClusterForTests('sink-postgres-handler.mjs');
  }, 60_000);
  afterAll(async () => cluster?.destroy());

  it('under a real daemon: rows once, stats in the ledger, a key already in the sink writes nothing', async (t) => {
    if (!cluster) return t.skip();
    await cluster.sql('CREATE TABLE readings (sensor TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL, value DOUBLE PRECISION)');
    const sink = await PostgresSink.open({ url: cluster.url() });
    try {
      const ledger = await runExample('sink-postgres-handler.mjs', { READINGS_URL: cluster.url() }, async (run) => void (await sink.once(run, () => EARLIER)));
      expect(ledger).toEqual(EXPECTED_LEDGER);
      const r = await cluster.sql('SELECT sensor, value FROM readings ORDER BY ts');
      expect(r.rows).toEqual([
        { sensor: 's1', value: 1 },
        { sensor: 's2', value: 2 },
        { sensor: 's1', value: 4 },
        { sensor: 's3', value: 8 },
      ]);
      expect((await cluster.sql('SELECT count(*)::int AS n FROM ckpt_applied')).rows[0].n).toBe(3);
    } finally {
      await sink.close();
    }
  });
});
