/**
 * PostgreSQL unreachable (the real server stopped): the FallbackStore degrades as on a locked
 * SQLite file (memory, journal, claim markers), hands out only files new to this process, and
 * replays everything into the database once the server is back; an outcome another host
 * recorded first is kept, the journal's is recorded as a conflict.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { PostgresPrimary } from '../../src/store/postgres/fallback-primary.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { STATS, files } from '../fallback/helpers.js';
import { freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cluster = await pgClusterForTests('fallback on postgres: server stopped');

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c().catch(() => undefined);
  // A test that failed with the server stopped must not leave it stopped for the next one.
  await cluster?.startServer().catch(() => undefined);
});
afterAll(async () => {
  await cluster?.destroy();
  cleanupTmpDirs();
});

const W = (workerId: string) => ({ workerId, leaseMs: 60_000, now: Date.now() });
const done = (cs: { fileUrl: string; token: string }[]) => cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats: STATS, now: Date.now() }));
const journals = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith('journal-'));

describe.skipIf(cluster === null)('PostgreSQL unreachable', () => {
  it('degrades, runs only files new to this process, replays after the restart, keeps the first completion', async () => {
    const url = cluster!.url();
    const schema = freshSchema('fbdeg');
    const dir = tmpDir();
    // probeMs 60 s: the test decides when recovery runs (tryRecover), after host B's turn.
    const a = await FallbackStore.open(new PostgresPrimary({ url, schema, maxConnections: 2, connectTimeoutMs: 1_000, fallbackDir: dir }), {
      lockTimeoutMs: 1_000,
      fallback: { workerId: 'A', probeMs: 60_000, snapshotMs: 0 },
    });
    closers.push(() => a.close());
    await a.discover(files('a', 6), Date.now());
    const first = await a.claim(4, W('A'));
    expect(first).toHaveLength(4);
    expect(await a.complete(done(first.slice(0, 1)))).toEqual(['ok']);

    await cluster!.stopServer('fast');
    // Claimed before, completed now: journaled and answered ok.
    expect(await a.complete(done(first.slice(1, 3)))).toEqual(['ok', 'ok']);
    // first[3] stays open through the outage and the recovery (carried into the database).
    expect(await a.heartbeat([first[3]!], 60_000, Date.now())).toEqual([]);
    expect(a.mode()).toMatchObject({ mode: 'degraded', kind: 'locked' });
    expect(journals(dir)).toHaveLength(1);

    // The rescan offers the six known files again and four new ones: only the new ones run
    // (a0004, a0005 are pending in the database, and another host may be running them).
    await a.discover([...files('a', 6), ...files('b', 4)], Date.now());
    const during = await a.claim(100, W('A'));
    expect(during.map((c) => c.fileUrl).sort()).toEqual(files('b', 4).map((f) => f.fileUrl));
    expect(await a.complete(done(during))).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(await a.tryRecover()).toBe(false);

    await cluster!.startServer();
    // Meanwhile host B saw b0000 too and completed it first.
    const b = await PostgresStore.connect({ url, schema, maxConnections: 1 });
    closers.push(() => b.close());
    await b.discover(files('b', 1), Date.now());
    const bc = await b.claimFile(files('b', 1)[0]!.fileUrl, W('B'));
    expect(bc).not.toBeNull();
    expect(await b.complete(done([bc!]))).toEqual(['ok']);

    expect(await a.tryRecover()).toBe(true);
    expect(a.mode().mode).toBe('normal');
    // The claim held through the outage was written back under its own token: it completes normally.
    const carried = await cluster!.sql(`SELECT status, claim_token FROM "${schema}".file_checkpoints WHERE file_url = $1`, [first[3]!.fileUrl]);
    expect(carried.rows).toEqual([{ status: 'processing', claim_token: first[3]!.token }]);
    expect(await a.complete(done([first[3]!]))).toEqual(['ok']);
    expect(journals(dir)).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'claims'))).toEqual([]);

    const rows = await cluster!.sql(`SELECT file_url, status, processed_by FROM "${schema}".file_checkpoints ORDER BY file_url`);
    const status = Object.fromEntries(rows.rows.map((r: { file_url: string; status: string }) => [r.file_url, r.status]));
    for (const f of [...files('a', 4), ...files('b', 4)]) expect(status[f.fileUrl], f.fileUrl).toBe('completed');
    for (const f of files('a', 2, 4)) expect(status[f.fileUrl], f.fileUrl).toBe('pending');
    // b0000: B's completion reached the ledger first and stays; A's is a conflict attempt.
    expect(rows.rows.find((r: { file_url: string }) => r.file_url === files('b', 1)[0]!.fileUrl)).toMatchObject({ processed_by: 'B' });
    const att = await cluster!.sql(`SELECT worker_id, outcome FROM "${schema}".file_attempts WHERE file_url = $1 ORDER BY id`, [files('b', 1)[0]!.fileUrl]);
    expect(att.rows).toEqual([
      { worker_id: 'B', outcome: 'completed' },
      { worker_id: 'A', outcome: 'conflict' },
    ]);
    // Nothing completed twice otherwise: one completed attempt per file.
    const twice = await cluster!.sql(`SELECT file_url FROM "${schema}".file_attempts WHERE outcome = 'completed' GROUP BY file_url HAVING count(*) > 1`);
    expect(twice.rows).toEqual([]);
    // Back to normal: the pending ones are claimable again through the database.
    const after = await a.claim(10, W('A'));
    expect(after.map((c) => c.fileUrl).sort()).toEqual(files('a', 2, 4).map((f) => f.fileUrl));
  });

  it('a claim the database granted is not extended past its database lease while degraded (other hosts cannot see markers)', async () => {
    const dir = tmpDir();
    const a = await FallbackStore.open(new PostgresPrimary({ url: cluster!.url(), schema: freshSchema('fblease'), maxConnections: 2, connectTimeoutMs: 1_000, fallbackDir: dir }), {
      fallback: { workerId: 'A', probeMs: 60_000, snapshotMs: 0 },
    });
    closers.push(() => a.close());
    await a.discover(files('d', 1), Date.now());
    const [c] = await a.claim(1, { workerId: 'A', leaseMs: 1_500, now: Date.now() });
    expect(c).toBeDefined();
    await cluster!.stopServer('fast');
    // Still inside the database lease: held (and degraded now).
    expect(await a.heartbeat([c!], 1_500, Date.now())).toEqual([]);
    expect(a.mode().mode).toBe('degraded');
    await waitFor(() => Date.now() > c!.leaseExpiresAt, { message: 'the database lease ran out' });
    // Another host may have taken it over by now: lost, and its outcome is not recorded.
    expect((await a.heartbeat([c!], 1_500, Date.now())).map((r) => r.token)).toEqual([c!.token]);
    expect(await a.complete(done([c!]))).toEqual(['lost']);
  });

  it('a store that starts while the server is down hands nothing out until it is back', async () => {
    const url = cluster!.url();
    const schema = freshSchema('fbstart');
    const dir = tmpDir();
    await cluster!.stopServer('fast');
    const a = await FallbackStore.open(new PostgresPrimary({ url, schema, maxConnections: 2, connectTimeoutMs: 1_000, fallbackDir: dir }), {
      fallback: { workerId: 'A', probeMs: 60_000, snapshotMs: 0 },
    });
    closers.push(() => a.close());
    expect(a.mode()).toMatchObject({ mode: 'degraded' });
    await a.discover(files('c', 3), Date.now());
    expect(await a.claim(10, W('A'))).toEqual([]);
    await cluster!.startServer();
    expect(await a.tryRecover()).toBe(true);
    // Files seen while degraded are handed to the database after recovery (re-discovery looks
    // at the disk: these test paths do not exist, so discover them again as the watcher would).
    await a.discover(files('c', 3), Date.now());
    expect((await a.claim(10, W('A'))).map((c) => c.fileUrl).sort()).toEqual(files('c', 3).map((f) => f.fileUrl));
  });
});
