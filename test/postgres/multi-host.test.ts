/**
 * Several daemons on several hosts sharing one PostgreSQL ledger, played by real processes
 * (each with its own worker id and a host name of its own) against a real server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/index.js';
import type { Claim } from '../../src/store/types.js';
import { freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { REPO, killChildren, runTs } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cluster = await pgClusterForTests('postgres multi-host');
const WORKER = 'test/fixtures/pg-claim-worker.ts';
const held = new Set<ChildProcess>();

afterEach(() => {
  killChildren();
  for (const c of held) c.kill('SIGKILL');
  held.clear();
  cleanupTmpDirs();
});
afterAll(async () => {
  await cluster?.destroy();
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, CKPT_PG_URL: cluster!.url(), ...extra };
}

function lines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

async function open(schema: string): Promise<PostgresStore> {
  return PostgresStore.connect({ url: cluster!.url(), schema, maxConnections: 2 });
}

describe.skipIf(cluster === null)('postgres: several hosts, one ledger', () => {
  it('4 processes on 2 hosts race over 20,000 files: discovered once, none claimed twice, none lost', async () => {
    const N = 20_000;
    const schema = freshSchema('race');
    await (await open(schema)).close();
    const dir = tmpDir();
    const workers = [
      ['host-a:1', 'host-a'],
      ['host-a:2', 'host-a'],
      ['host-b:3', 'host-b'],
      ['host-b:4', 'host-b'],
    ] as const;
    const outs = workers.map((_, i) => path.join(dir, `out${i}`));
    const ran = await Promise.all(workers.map(([id, host], i) => runTs(WORKER, [schema, outs[i]!, id, host, 'race', String(N)], { env: env() })));
    for (const r of ran) expect(r.code, r.stderr).toBe(0);

    const summaries = ran.map((r) => JSON.parse(r.stdout.trim().split('\n').pop()!) as { inserted: number; completed: number });
    // Every host discovered every file; each was inserted exactly once across all of them.
    expect(summaries.reduce((a, s) => a + s.inserted, 0)).toBe(N);
    const all = outs.flatMap(lines);
    expect(all).toHaveLength(N);
    expect(new Set(all).size).toBe(N);
    // Both hosts did real work (not one process draining everything while the rest waited).
    expect(summaries.filter((s) => s.completed > 0).length).toBeGreaterThanOrEqual(2);

    const check = await open(schema);
    try {
      expect(await check.counts()).toEqual({ pending: 0, processing: 0, completed: N, failed: 0, dead: 0 });
      const a = await check.pool.query(`SELECT count(*)::int AS n, count(DISTINCT file_url)::int AS d, count(*) FILTER (WHERE attempt <> 1)::int AS retried FROM "${schema}".file_attempts`);
      expect(a.rows[0]).toEqual({ n: N, d: N, retried: 0 });
    } finally {
      await check.close();
    }
  });

  it('a process SIGKILLed mid-file on one host is taken over by another host after its lease', async () => {
    const schema = freshSchema('kill');
    const store = await open(schema);
    try {
      await store.discover([{ fileUrl: '/shared/big.csv', fileType: 'csv', mtimeMs: 0, size: 1, fingerprint: 'fp' }], Date.now());
      const dir = tmpDir();
      const holdOut = path.join(dir, 'hold.json');
      const LEASE = 1_500;
      // The holder: claims the file, records itself as the handler, hangs.
      const holder = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, WORKER), schema, holdOut, 'host-a:1', 'host-a', 'hold'], {
        cwd: REPO,
        env: env({ CKPT_LEASE_MS: String(LEASE) }),
        stdio: 'ignore',
      });
      held.add(holder);
      await waitFor(() => fs.existsSync(holdOut) && fs.readFileSync(holdOut, 'utf8').length > 0, { message: 'holder claimed' });
      const claim = JSON.parse(fs.readFileSync(holdOut, 'utf8')) as Claim;
      await waitFor(async () => (await store.get('/shared/big.csv'))?.handlerPid === holder.pid, { message: 'handler pid recorded' });
      holder.kill('SIGKILL');
      await waitFor(() => holder.exitCode !== null || holder.signalCode !== null, { message: 'holder dead' });

      // Another host: takes the file over once the lease ran out, and completes it.
      const out = path.join(dir, 'taker');
      const r = await runTs(WORKER, [schema, out, 'host-b:1', 'host-b', 'drain', '1'], { env: env({ CKPT_LEASE_MS: String(LEASE) }) });
      expect(r.code, r.stderr).toBe(0);
      expect(lines(out)).toEqual(['/shared/big.csv']);
      const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as { expired: unknown[] };
      // onExpired was told, with the dead holder's worker id and pid: on host-b it cannot check
      // host-a's processes, the lease and the token are what protect the file.
      expect(report.expired).toEqual([
        { fileUrl: '/shared/big.csv', version: 1, attempt: 1, token: claim.token, workerId: 'host-a:1', handlerPid: holder.pid, status: 'failed' },
      ]);

      const rec = await store.get('/shared/big.csv');
      expect(rec).toMatchObject({ status: 'completed', processedBy: 'host-b:1', attempts: 2, retryCount: 1 });
      const att = await store.attempts('/shared/big.csv');
      expect(att.map((a) => [a.attempt, a.workerId, a.outcome])).toEqual([
        [1, 'host-a:1', 'lease_expired'],
        [2, 'host-b:1', 'completed'],
      ]);
      // The dead holder's token is worthless now, whatever a late write of its tries.
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      expect(await store.complete([{ fileUrl: claim.fileUrl, token: claim.token, stats, now: Date.now() }])).toEqual(['lost']);
    } finally {
      await store.close();
    }
  });

  it('the server restarted mid-run: workers see the store unavailable, ride it out, nothing is lost or completed twice', async () => {
    const N = 3_000;
    const schema = freshSchema('outage');
    const store = await open(schema);
    const files = Array.from({ length: N }, (_, i) => ({ fileUrl: `/shared/o${i}`, fileType: 'csv', mtimeMs: 0, size: 1, fingerprint: `fp${i}` }));
    await store.discover(files, Date.now());
    await store.close();
    const dir = tmpDir();
    const outs = [0, 1].map((i) => path.join(dir, `out${i}`));
    // A short lease: a claim whose answer was lost in the outage is taken over soon after.
    const running = outs.map((out, i) =>
      runTs(WORKER, [schema, out, `host-${i}:1`, `host-${i}`, 'outage', String(N)], { env: env({ CKPT_LEASE_MS: '2000' }) }),
    );
    // Let them get going, then restart the server under them (fast: 57P01 to every session).
    await waitFor(async () => {
      const s = await cluster!.sql(`SELECT count(*)::int AS n FROM "${schema}".file_checkpoints WHERE status = 'completed'`);
      return (s.rows[0] as { n: number }).n >= 200;
    });
    await cluster!.stopServer('fast');
    await cluster!.startServer();
    const ran = await Promise.all(running);
    for (const r of ran) expect(r.code, r.stderr).toBe(0);
    const reports = ran.map((r) => JSON.parse(r.stdout.trim().split('\n').pop()!) as { errors: number });
    // At least one worker really met the outage (else this test proved nothing).
    expect(reports.reduce((a, r) => a + r.errors, 0)).toBeGreaterThan(0);

    const all = outs.flatMap(lines);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toHaveLength(N);
    const check = await open(schema);
    try {
      expect(await check.counts()).toEqual({ pending: 0, processing: 0, completed: N, failed: 0, dead: 0 });
      const a = await check.pool.query(
        `SELECT count(*)::int AS n, count(DISTINCT file_url)::int AS d FROM "${schema}".file_attempts WHERE outcome = 'completed'`,
      );
      expect(a.rows[0]).toEqual({ n: N, d: N });
    } finally {
      await check.close();
    }
  });
});
