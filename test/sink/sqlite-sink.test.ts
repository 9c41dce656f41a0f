/**
 * SqliteSink against real database files: the rows and the key commit together or not at all,
 * a second run of a key writes nothing and returns the first run's stats, and misuse (an async
 * write, a statement after the write returned, no stats, an aborted run) commits nothing.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteSink, type SqliteSinkTx } from '../../src/sink/sqlite-sink.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { lateWorker, workers } from './fence.js';

const open: SqliteSink[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const w of workers) w.kill('SIGKILL');
  cleanupTmpDirs();
});

function sinkAt(): { sink: SqliteSink; file: string } {
  const file = path.join(tmpDir('ckpt-sink-'), 'sink.db');
  const sink = SqliteSink.open(file);
  sink.db.exec('CREATE TABLE items (k TEXT, n INTEGER)');
  open.push(sink);
  return { sink, file };
}

const run = (key: string, attempt = 1) => ({ idempotencyKey: key, fileUrl: `/in/${key}.csv`, version: 3, attempt, workerId: 'w1' });
const count = (sink: SqliteSink) => (sink.db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n;
const keys = (sink: SqliteSink) => (sink.db.prepare('SELECT count(*) AS n FROM ckpt_applied').get() as { n: number }).n;

function insertRows(n: number) {
  return (tx: SqliteSinkTx) => {
    const ins = tx.prepare('INSERT INTO items (k, n) VALUES (?, ?)');
    for (let i = 0; i < n; i++) ins.run('a', i);
    return { total: n, filtered: 0, persisted: n };
  };
}

describe('SqliteSink.once', () => {
  it('writes the rows and records the key with the stats; a second run of the key writes nothing and returns the first stats', async () => {
    const { sink } = sinkAt();
    const first = await sink.once(run('k1', 1), insertRows(5));
    expect(first).toMatchObject({ total: 5, persisted: 5, alreadyApplied: false, appliedByAttempt: 1 });
    const again = await sink.once(run('k1', 2), insertRows(7));
    expect(again).toMatchObject({ total: 5, persisted: 5, alreadyApplied: true, appliedByAttempt: 1, appliedAt: first.appliedAt });
    expect(count(sink)).toBe(5);
    expect(sink.applied('k1')).toMatchObject({ fileUrl: '/in/k1.csv', version: 3, attempt: 1, workerId: 'w1', stats: { total: 5, filtered: 0, persisted: 5 } });
  });

  it('commits nothing when the write throws, and the next run applies', async () => {
    const { sink } = sinkAt();
    await expect(
      sink.once(run('k2'), (tx) => {
        insertRows(3)(tx);
        throw new Error('bad row 4');
      }),
    ).rejects.toThrow('bad row 4');
    expect([count(sink), keys(sink)]).toEqual([0, 0]);
    expect((await sink.once(run('k2', 2), insertRows(4))).alreadyApplied).toBe(false);
    expect(count(sink)).toBe(4);
  });

  it('refuses an async write: what it wrote before its await is rolled back, and its statements after the await throw', async () => {
    const { sink } = sinkAt();
    let late: unknown;
    const write = async (tx: SqliteSinkTx) => {
      tx.run("INSERT INTO items (k, n) VALUES ('before', 1)");
      await Promise.resolve();
      try {
        tx.run("INSERT INTO items (k, n) VALUES ('after', 2)");
      } catch (err) {
        late = err;
      }
      return { total: 2, filtered: 0, persisted: 2 };
    };
    // @ts-expect-error: the type says synchronous; a JavaScript handler can still pass an async function
    await expect(sink.once(run('k3'), write)).rejects.toThrow(/must be synchronous/);
    await new Promise((r) => setImmediate(r));
    expect(String(late)).toMatch(/used after its transaction ended/);
    expect([count(sink), keys(sink)]).toEqual([0, 0]);
  });

  it('commits nothing when the write returns no stats, or the run is aborted', async () => {
    const { sink } = sinkAt();
    // @ts-expect-error: returning nothing is what the check is for
    await expect(sink.once(run('k4'), (tx) => void insertRows(2)(tx))).rejects.toThrow(/must return the run's stats/);
    const ac = new AbortController();
    ac.abort(new Error('lease lost'));
    await expect(sink.once({ ...run('k4'), signal: ac.signal }, insertRows(2))).rejects.toThrow(/aborted \(lease lost\)/);
    expect([count(sink), keys(sink)]).toEqual([0, 0]);
  });

  it('a worker stopped inside its transaction and continued after another took the same key: one applies, the other finds the key', async () => {
    const { sink, file } = sinkAt();
    sink.close();
    open.length = 0;
    const { a, b } = await lateWorker('sqlite', file, 'k5', 50);
    expect([a.alreadyApplied, b.alreadyApplied].sort()).toEqual([false, true]);
    // A held the write lock the whole time: it applied, B found its key.
    expect(a.alreadyApplied).toBe(false);
    expect(b).toMatchObject({ total: 50, appliedAt: a.appliedAt });
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare("SELECT count(*) AS n, count(DISTINCT n) AS d FROM items WHERE k = 'k5'").get()).toEqual({ n: 50, d: 50 });
    } finally {
      db.close();
    }
  });
});
