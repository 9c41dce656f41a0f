/**
 * `ckpt run` on PostgreSQL with the server stopped mid-run (a real daemon, a real server):
 * degraded (healthz says so), files dropped meanwhile are handled once, the journal is
 * replayed once the server is back, nothing is lost, nothing completed twice, no journal left.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readJournal } from '../../src/store/fallback/journal.js';
import { cli, drop, killDaemons, records, setup, startDaemon, started } from '../helpers/daemon.js';
import { freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cluster = await pgClusterForTests('daemon on postgres: server stopped mid-run');
afterEach(async () => {
  killDaemons();
  await cluster?.startServer().catch(() => undefined);
  cleanupTmpDirs();
});
afterAll(async () => {
  await cluster?.destroy();
});

function healthz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/healthz?verbose=1' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as Record<string, unknown> }));
      })
      .on('error', reject);
  });
}

describe.skipIf(!cluster)('ckpt run on PostgreSQL, server stopped mid-run', () => {
  it('degraded while the server is down, every file handled once, all of it in the database after the restart', async () => {
    const schema = freshSchema('daemondeg');
    const s = setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema }, fallbackDir: 'fallback', http: { port: 0 }, lockTimeoutMs: 1_000, leaseMs: 20_000 });
    const fallback = path.join(s.dir, 'fallback');
    const d = startDaemon(s, ['--worker-id', 'host-a:1'], { CKPT_TEST_PG_URL: cluster!.url() });
    await started(d);
    const port = Number((await d.waitForLog((l) => l.msg === 'serving /metrics and /healthz')).port);
    const completed = async () =>
      (await cluster!.sql(`SELECT file_url FROM "${schema}".file_checkpoints WHERE status = 'completed'`)).rows.map((r: { file_url: string }) => path.basename(r.file_url));

    for (let i = 0; i < 5; i++) drop(s.inbox, `before${i}.csv`, `row ${i}\n`);
    await waitFor(async () => (await completed()).length === 5, { timeoutMs: 30_000, message: 'the first 5 files completed' });

    await cluster!.stopServer('fast');
    for (let i = 0; i < 8; i++) drop(s.inbox, `during${i}.csv`, `row ${i}\n`);
    // Handled while the server is down: each one ended in the recorder's log.
    await waitFor(() => records(s).filter((r) => r.ev === 'end' && path.basename(r.file).startsWith('during')).length === 8, {
      timeoutMs: 30_000,
      message: 'the 8 files dropped during the outage handled',
    });
    const h = await healthz(port);
    expect(h.status).toBe(503);
    expect(h.body).toMatchObject({ mode: 'degraded' });
    expect(fs.readdirSync(fallback).filter((f) => f.startsWith('journal-'))).toHaveLength(1);
    expect(d.lines.some((l) => l.level === 'error' && String(l.msg).startsWith('database unavailable: switching to degraded mode'))).toBe(true);
    // `ckpt doctor` reads the same fallbackDir: the server is a FAIL, and so is this host's mode.
    const doc = await cli(['doctor', '--json', '--config', s.config], { env: { CKPT_TEST_PG_URL: cluster!.url() } });
    expect(doc.code).toBe(69);
    const checks = (JSON.parse(doc.stdout) as { checks: { name: string; level: string; message: string }[] }).checks;
    expect(checks.find((c) => c.name === 'mode')).toMatchObject({ level: 'fail', message: expect.stringContaining('host-a:1') });
    expect(checks.find((c) => c.name === 'journals')).toMatchObject({ level: 'warn' });

    await cluster!.startServer();
    await waitFor(async () => (await completed()).length === 13, { timeoutMs: 30_000, message: 'all 13 files completed in the database' });
    await waitFor(async () => (await healthz(port)).status === 200, { timeoutMs: 10_000, message: 'healthz back to ok' });
    await waitFor(() => fs.readdirSync(fallback).filter((f) => f.startsWith('journal-')).length === 0, { timeoutMs: 10_000, message: 'journal removed' });

    // Nothing ran twice: one handler start per file, one completed attempt per file, no conflict.
    const starts = records(s).filter((r) => r.ev === 'start').map((r) => path.basename(r.file));
    expect(starts.sort()).toEqual([...Array.from({ length: 5 }, (_, i) => `before${i}.csv`), ...Array.from({ length: 8 }, (_, i) => `during${i}.csv`)].sort());
    const att = await cluster!.sql(`SELECT outcome, count(*)::int AS n FROM "${schema}".file_attempts GROUP BY outcome ORDER BY outcome`);
    expect(att.rows).toEqual([{ outcome: 'completed', n: 13 }]);

    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});

describe.skipIf(!cluster)('ckpt run on PostgreSQL, SIGKILL while degraded', () => {
  it('the next daemon replays the dead one\'s journal before it starts: nothing lost, nothing run twice', async () => {
    const schema = freshSchema('daemonkill');
    const s = setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema }, fallbackDir: 'fallback', lockTimeoutMs: 1_000 });
    const fallback = path.join(s.dir, 'fallback');
    const env = { CKPT_TEST_PG_URL: cluster!.url() };
    const first = startDaemon(s, ['--worker-id', 'host-a:1'], env);
    await started(first);
    drop(s.inbox, 'warm.csv', 'row\n');
    const completed = async () => Number((await cluster!.sql(`SELECT count(*)::int AS n FROM "${schema}".file_checkpoints WHERE status = 'completed'`)).rows[0].n);
    await waitFor(async () => (await completed()) === 1, { timeoutMs: 30_000, message: 'warm-up file completed' });

    await cluster!.stopServer('fast');
    for (let i = 0; i < 4; i++) drop(s.inbox, `k${i}.csv`, `row ${i}\n`);
    // Killed once all 4 outcomes are in the journal (a kill between a handler's end and its
    // journal line would rightly run that file again).
    const journaled = () =>
      fs
        .readdirSync(fallback)
        .filter((f) => f.startsWith('journal-'))
        .flatMap((f) => readJournal(path.join(fallback, f)).entries)
        .filter((e) => e.t === 'complete').length;
    await waitFor(() => journaled() === 4, { timeoutMs: 30_000, message: 'the 4 files handled and journaled while the server is down' });
    first.child.kill('SIGKILL');
    await first.exited;
    expect(fs.readdirSync(fallback).filter((f) => f.startsWith('journal-'))).toHaveLength(1);

    await cluster!.startServer();
    const second = startDaemon(s, ['--worker-id', 'host-a:2'], env);
    await started(second);
    // Replayed at open, before the first scan: the files still in the folder are not run again.
    expect(await completed()).toBe(5);
    expect(fs.readdirSync(fallback).filter((f) => f.startsWith('journal-'))).toEqual([]);
    drop(s.inbox, 'after.csv', 'row\n');
    await waitFor(async () => (await completed()) === 6, { timeoutMs: 30_000, message: 'a new file completed by the second daemon' });
    const starts = records(s).filter((r) => r.ev === 'start').map((r) => path.basename(r.file));
    expect(starts.sort()).toEqual(['after.csv', 'k0.csv', 'k1.csv', 'k2.csv', 'k3.csv', 'warm.csv']);
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });
});

describe.skipIf(!cluster)('ckpt run on PostgreSQL: start-up', () => {
  it('without fallbackDir: exit 78 naming the key; with the server down at start: exit 69', async () => {
    const schema = freshSchema('daemonstart');
    const env = { CKPT_TEST_PG_URL: cluster!.url() };
    const noDir = startDaemon(setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema } }), [], env);
    expect((await noDir.exited).code).toBe(78);
    expect(JSON.stringify(noDir.lines) + noDir.stderr()).toContain('fallbackDir: missing');

    await cluster!.stopServer('fast');
    const down = startDaemon(setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema }, fallbackDir: 'fallback', lockTimeoutMs: 1_000 }), [], env);
    expect((await down.exited).code).toBe(69);
    expect(JSON.stringify(down.lines) + down.stderr()).toContain('unreachable at start');
  });
});
