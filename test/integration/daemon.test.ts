/**
 * `ckpt run` end to end: real daemons (child processes), real folders, the recorder handler.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cli,
  countStatus,
  drop,
  killDaemons,
  overlaps,
  records,
  rows,
  runsByFile,
  setup,
  startDaemon,
  started,
  statusOf,
} from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

describe('ckpt run', () => {
  it('two daemons share the work: every file dropped is handled exactly once', async () => {
    const s = setup();
    const a = startDaemon(s);
    const b = startDaemon(s);
    await Promise.all([started(a), started(b)]);
    const N = 40;
    for (let i = 0; i < N; i++) drop(s.inbox, `f${i}.csv`, `row ${i}\n`);
    await waitFor(() => countStatus(s.db, 'completed') === N, { timeoutMs: 30_000 });
    const starts = records(s).filter((r) => r.ev === 'start');
    expect(starts).toHaveLength(N);
    expect(new Set(starts.map((r) => r.file)).size).toBe(N);
    const workers = new Set(rows(s.db).map((r) => r.processed_by));
    expect(workers.size).toBeGreaterThanOrEqual(1);
    for (const r of rows(s.db)) expect(r).toMatchObject({ records_total: 1, records_persisted: 1, attempts: 1 });
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);
  });

  it('files dropped while down are handled at start; completed ones are not run again', async () => {
    const s = setup();
    drop(s.inbox, 'early1.csv', 'a\n');
    drop(s.inbox, 'early2.csv', 'b\n');
    const first = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(first.code, first.stderr).toBe(0);
    expect(countStatus(s.db, 'completed')).toBe(2);
    drop(s.inbox, 'late.csv', 'c\n');
    const d = startDaemon(s);
    await waitFor(() => statusOf(s.db, path.join(s.inbox, 'late.csv')) === 'completed');
    d.child.kill('SIGTERM');
    await d.exited;
    const starts = records(s).filter((r) => r.ev === 'start').map((r) => path.basename(r.file)).sort();
    expect(starts).toEqual(['early1.csv', 'early2.csv', 'late.csv']);
  });

  it('a file written slowly in chunks is handled once, whole', async () => {
    const s = setup({ stableMs: 400 });
    const d = startDaemon(s);
    await started(d);
    const file = path.join(s.inbox, 'slow.csv');
    const fd = fs.openSync(file, 'w');
    const chunk = 'x'.repeat(1000) + '\n';
    for (let i = 0; i < 6; i++) {
      fs.writeSync(fd, chunk);
      // Pauses shorter than stableMs: the file never looks finished in between.
      await new Promise((r) => setTimeout(r, 150));
    }
    fs.closeSync(fd);
    await waitFor(() => statusOf(s.db, file) === 'completed');
    const starts = records(s).filter((r) => r.ev === 'start');
    expect(starts).toHaveLength(1);
    expect(starts[0]!.size).toBe(6 * chunk.length);
  });

  it('hostile names are each handled exactly once and reach the handler byte for byte', async () => {
    const s = setup({ concurrency: 4 });
    const names = [
      'with space.csv',
      'tab\there.csv',
      'new\nline.csv',
      '-leading-dash.csv',
      '$(touch PWNED).csv',
      '`touch PWNED2`.csv',
      'semi;colon.csv',
      'quote\'s "double".csv',
      'back\\slash.csv',
      'glob*?[x].csv',
      'наименование-名前.csv',
      `${'long'.repeat(58)}.csv`, // 236 + 4 = 240 bytes
    ];
    expect(Buffer.byteLength(names[names.length - 1]!)).toBe(236);
    for (const n of names) drop(s.inbox, n, 'row\n');
    const r = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(r.code, r.stderr).toBe(0);
    const seen = records(s).filter((x) => x.ev === 'start').map((x) => x.file).sort();
    expect(seen).toEqual(names.map((n) => path.join(s.inbox, n)).sort());
    expect(countStatus(s.db, 'completed')).toBe(names.length);
    // No shell ever ran: the command substitutions did not create anything.
    expect(fs.existsSync(path.join(s.dir, 'PWNED'))).toBe(false);
    expect(fs.existsSync(path.join(s.dir, 'PWNED2'))).toBe(false);
    expect(fs.existsSync(path.join(s.inbox, 'PWNED'))).toBe(false);
  });

  it('retries with backoff, dead-letters permanent and repeated failures, and requeues on `ckpt retry`', async () => {
    const s = setup({ retry: { maxRetries: 2, baseDelayMs: 20, maxDelayMs: 50 } });
    const flaky = drop(s.inbox, 'flaky.csv', 'fail-once\n');
    const perm = drop(s.inbox, 'perm.csv', 'permanent\n');
    const bad = drop(s.inbox, 'bad.csv', 'fail\n');
    const r = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(r.code, r.stderr).toBe(1); // some file is dead
    expect(statusOf(s.db, flaky)).toBe('completed');
    expect(statusOf(s.db, perm)).toBe('dead');
    expect(statusOf(s.db, bad)).toBe('dead');
    const byFile = (f: string) => records(s).filter((x) => x.ev === 'start' && x.file === f).length;
    expect(byFile(flaky)).toBe(2);
    expect(byFile(perm)).toBe(1); // exit 65: no retries
    expect(byFile(bad)).toBe(3); // maxRetries 2 -> 3 runs
    const badRow = rows(s.db).find((x) => x.file_url === bad)!;
    expect(badRow).toMatchObject({ status: 'dead', retry_count: 3, attempts: 3 });
    expect(String(badRow.error_message)).toMatch(/told to fail/);
    const permRow = rows(s.db).find((x) => x.file_url === perm)!;
    expect(String(permRow.error_message)).toMatch(/bad data/);
    const att = rows(s.db, `SELECT outcome FROM file_attempts WHERE file_url = '${bad.replace(/'/g, "''")}' ORDER BY attempt`);
    expect(att.map((a) => a.outcome)).toEqual(['exit', 'exit', 'exit']);

    // The operator fixes the file and requeues it.
    fs.writeFileSync(bad, 'fixed\n');
    const rq = await cli(['retry', bad, '--config', s.config], { cwd: s.dir });
    expect(rq.code, rq.stderr).toBe(0);
    // Rewriting the file changed its fingerprint too; either way it must run once more and complete.
    const again = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(statusOf(s.db, bad)).toBe('completed');
    expect(again.code).toBe(1); // perm.csv is still dead
  });

  it('SIGTERM mid-work gives running files back: no row is left in processing', async () => {
    const s = setup({ shutdownGraceMs: 300, concurrency: 3 });
    const d = startDaemon(s);
    await started(d);
    for (let i = 0; i < 3; i++) drop(s.inbox, `long${i}.csv`, 'sleep 10000\n');
    await waitFor(() => countStatus(s.db, 'processing') === 3);
    await waitFor(() => records(s).filter((r) => r.ev === 'start').length === 3);
    d.child.kill('SIGTERM');
    const ex = await d.exited;
    expect(ex.code).toBe(0);
    expect(countStatus(s.db, 'processing')).toBe(0);
    expect(countStatus(s.db, 'pending')).toBe(3);
    // Given back without counting an attempt against the budget.
    for (const r of rows(s.db)) expect(r.retry_count).toBe(0);
    const att = rows(s.db, 'SELECT outcome FROM file_attempts');
    expect(att.map((a) => a.outcome)).toEqual(['released', 'released', 'released']);
  });

  it("a SIGKILLed daemon's files are taken over and completed once, never two runs at the same time", async () => {
    // 3 s, not less: a handler that cannot be started before its lease runs out is refused
    // (spawn-helper.ts notAfter), and under CI load a start can take well over a second.
    const s = setup({ leaseMs: 3_000, concurrency: 2 });
    const a = startDaemon(s);
    await started(a);
    const files = [drop(s.inbox, 'k1.csv', 'sleep 5000\n'), drop(s.inbox, 'k2.csv', 'sleep 5000\n')];
    await waitFor(() => records(s).filter((r) => r.ev === 'start').length === 2);
    // B is up before A dies, so it takes over as soon as A's leases run out (1.5 s), while the
    // orphaned handlers (own process groups) are still running: B must kill them first.
    const b = startDaemon(s);
    await started(b);
    a.child.kill('SIGKILL');
    await a.exited;
    await waitFor(() => files.every((f) => statusOf(s.db, f) === 'completed'), { timeoutMs: 30_000 });
    const recs = records(s);
    expect(overlaps(recs)).toEqual([]);
    for (const f of files) {
      const ends = recs.filter((r) => r.file === f && r.ev === 'end');
      expect(ends).toHaveLength(1); // the orphan never finished: it was killed
      expect(runsByFile(recs).get(f)).toHaveLength(2);
    }
    const att = rows(s.db, 'SELECT outcome FROM file_attempts ORDER BY file_url, attempt');
    expect(att.map((x) => x.outcome)).toEqual(['lease_expired', 'completed', 'lease_expired', 'completed']);
  });

  it('--once exits 0 when everything completed', async () => {
    const s = setup();
    drop(s.inbox, 'a.csv', 'x\n');
    const r = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(r.code, r.stderr).toBe(0);
    expect(countStatus(s.db, 'completed')).toBe(1);
  });

  it('runs a module handler with attempt, worker id, idempotency key and signal; PermanentError is dead at once', async () => {
    const s = setup({ handler: { module: path.resolve('test/fixtures/daemon/module-recorder.mjs') } });
    const ok = drop(s.inbox, 'ok.csv', 'fine\n');
    const perm = drop(s.inbox, 'perm.csv', 'permanent\n');
    const r = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(r.code, r.stderr).toBe(1);
    expect(rows(s.db).find((x) => x.file_url === ok)).toMatchObject({ status: 'completed', records_total: 3, records_filtered: 1, records_persisted: 2 });
    expect(rows(s.db).find((x) => x.file_url === perm)).toMatchObject({ status: 'dead', attempts: 1 });
    const recs = records(s).filter((x) => x.ev === 'module') as unknown as { file: string; attempt: number; key: string; hasSignal: boolean; type: string }[];
    expect(recs).toHaveLength(2);
    for (const x of recs) expect(x).toMatchObject({ attempt: 1, hasSignal: true, type: 'inbox' });
    expect(recs[0]!.key).toMatch(/^[0-9a-f]{32}$/);
  });

  it('after-actions: completed files move to done without overwriting, dead ones to dead', async () => {
    const s = setup({ onSuccess: { moveTo: 'done' }, onDead: { moveTo: 'dead' }, createDirs: true });
    fs.mkdirSync(path.join(s.dir, 'done'), { recursive: true });
    fs.writeFileSync(path.join(s.dir, 'done', 'a.csv'), 'already here\n');
    drop(s.inbox, 'a.csv', 'new\n');
    drop(s.inbox, 'p.csv', 'permanent\n');
    const r = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(r.code, r.stderr).toBe(1);
    expect(fs.readFileSync(path.join(s.dir, 'done', 'a.csv'), 'utf8')).toBe('already here\n');
    const done = fs.readdirSync(path.join(s.dir, 'done')).sort();
    expect(done).toHaveLength(2);
    expect(fs.readdirSync(path.join(s.dir, 'dead'))).toEqual(['p.csv']);
    const dead = rows(s.db).find((x) => x.status === 'dead')!;
    expect(dead.after_action).toBe(`move:${path.join(s.dir, 'dead')}`);
    expect(fs.readdirSync(s.inbox).filter((n) => n !== LEDGER_MARKER)).toEqual([]);
  });
});

describe('metrics and health over HTTP', () => {
  it('serves /metrics and /healthz on loopback while running', async () => {
    const s = setup({ http: { port: 0 } });
    const d = startDaemon(s);
    const line = await d.waitForLog((l) => l.msg === 'serving /metrics and /healthz');
    const port = line.port as number;
    drop(s.inbox, 'm.csv', 'x\n');
    await waitFor(() => countStatus(s.db, 'completed') === 1);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', mode: 'normal' });
    const text = await waitFor(async () => {
      const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /ckpt_completions_total\{[^}]*\} 1\b/.test(t) ? t : null;
    });
    // Labelled by the configured watch folder and its file type (the folder's name here).
    const labels = `folder="${s.inbox}",file_type="inbox"`;
    expect(text).toContain(`ckpt_claims_total{${labels}} 1\n`);
    expect(text).toMatch(/ckpt_files\{status="completed"\} 1\b/);
    expect(text).toContain(`ckpt_handler_duration_seconds_count{outcome="completed",${labels}} 1\n`);
    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});

describe('bad configuration', () => {
  it('exits 78 with one message naming the file and the key, no stack trace', async () => {
    const s = setup({ concurrency: 'four' });
    const r = await cli(['run', '--config', s.config], { cwd: s.dir });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/ckpt\.config\.json/);
    expect(r.stderr).toMatch(/concurrency/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 78 for an unknown key and for a missing watched folder', async () => {
    const s1 = setup({ bogus: 1 });
    const r1 = await cli(['run', '--config', s1.config], { cwd: s1.dir });
    expect(r1.code).toBe(78);
    expect(r1.stderr).toMatch(/bogus/);
    const s2 = setup({ watch: [{ dir: 'nope' }] });
    const r2 = await cli(['run', '--config', s2.config], { cwd: s2.dir });
    expect(r2.code).toBe(78);
    expect(r2.stderr).toMatch(/watch\[0\]\.dir/);
  });
});
