/**
 * PostgresSink against a throwaway PostgreSQL cluster: the same promises as the SQLite sink,
 * with an async write on one connection, and the late worker waiting on the first one's
 * uncommitted key.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PostgresSink, type PostgresSinkTx } from '../../src/sink/postgres-sink.js';
import { type PgCluster, pgClusterForTests } from '../helpers/postgres.js';
import { lateWorker, workers } from './fence.js';

let cluster: PgCluster | null = null;
const sinks: PostgresSink[] = [];
beforeAll(async () => {
  cluster = await pgClusterForTests('postgres sink');
  if (cluster) await cluster.sql('CREATE TABLE items (k TEXT, n INTEGER)');
}, 60_000);
afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close();
  for (const w of workers) w.kill('SIGKILL');
});
afterAll(async () => cluster?.destroy());

async function sink(): Promise<PostgresSink> {
  const s = await PostgresSink.open({ url: cluster!.url() });
  sinks.push(s);
  return s;
}

const run = (key: string, attempt = 1) => ({ idempotencyKey: key, fileUrl: `/in/${key}.csv`, version: 2, attempt, workerId: 'w1' });
const count = async (key: string) => Number((await cluster!.sql('SELECT count(*) AS n FROM items WHERE k = $1', [key])).rows[0].n);
const keyRows = async (key: string) => Number((await cluster!.sql('SELECT count(*) AS n FROM ckpt_applied WHERE idempotency_key = $1', [key])).rows[0].n);

function insertRows(key: string, n: number) {
  return async (tx: PostgresSinkTx) => {
    for (let i = 0; i < n; i++) await tx.query('INSERT INTO items (k, n) VALUES ($1, $2)', [key, i]);
    return { total: n, filtered: 0, persisted: n };
  };
}

describe('PostgresSink.once', () => {
  it('writes the rows and records the key with the stats; a second run of the key writes nothing and returns the first stats', async (t) => {
    if (!cluster) return t.skip();
    const s = await sink();
    const first = await s.once(run('p1', 1), insertRows('p1', 5));
    expect(first).toMatchObject({ total: 5, alreadyApplied: false, appliedByAttempt: 1 });
    const again = await s.once(run('p1', 2), insertRows('p1', 7));
    expect(again).toMatchObject({ total: 5, persisted: 5, alreadyApplied: true, appliedByAttempt: 1, appliedAt: first.appliedAt });
    expect(await count('p1')).toBe(5);
    expect(await s.applied('p1')).toMatchObject({ fileUrl: '/in/p1.csv', version: 2, attempt: 1, stats: { total: 5, filtered: 0, persisted: 5 } });
  });

  it('commits nothing when the write throws or returns no stats, or the run is aborted; tx is dead after the write', async (t) => {
    if (!cluster) return t.skip();
    const s = await sink();
    await expect(
      s.once(run('p2'), async (tx) => {
        await insertRows('p2', 3)(tx);
        throw new Error('bad row 4');
      }),
    ).rejects.toThrow('bad row 4');
    // @ts-expect-error: returning nothing is what the check is for
    await expect(s.once(run('p2'), async (tx) => void (await insertRows('p2', 3)(tx)))).rejects.toThrow(/must return the run's stats/);
    const ac = new AbortController();
    await expect(
      s.once({ ...run('p2'), signal: ac.signal }, async (tx) => {
        const stats = await insertRows('p2', 3)(tx);
        ac.abort(new Error('lease lost'));
        return stats;
      }),
    ).rejects.toThrow(/aborted \(lease lost\)/);
    let kept: PostgresSinkTx | undefined;
    await s.once(run('p3'), async (tx) => {
      kept = tx;
      return { total: 0, filtered: 0, persisted: 0 };
    });
    expect(() => kept!.query("INSERT INTO items (k, n) VALUES ('p3', 1)")).toThrow(/used after its transaction ended/);
    expect([await count('p2'), await keyRows('p2'), await count('p3')]).toEqual([0, 0, 0]);
    // The connection went back to the pool clean: the next run on it applies.
    expect((await s.once(run('p2', 4), insertRows('p2', 2))).alreadyApplied).toBe(false);
    expect(await count('p2')).toBe(2);
  });

  it('a worker stopped inside its transaction and continued after another took the same key: one applies, the other finds the key', async (t) => {
    if (!cluster) return t.skip();
    const { a, b } = await lateWorker('postgres', cluster.url(), 'p5', 50);
    expect(a.alreadyApplied).toBe(false);
    expect(b).toMatchObject({ alreadyApplied: true, total: 50, appliedAt: a.appliedAt });
    const c = new pg.Client({ connectionString: cluster.url() });
    await c.connect();
    try {
      const r = await c.query("SELECT count(*)::int AS n, count(DISTINCT n)::int AS d FROM items WHERE k = 'p5'");
      expect(r.rows[0]).toEqual({ n: 50, d: 50 });
    } finally {
      await c.end();
    }
  });
});
