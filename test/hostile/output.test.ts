/**
 * Hostile handlers through the real CLI: megabytes of output, broken stats lines, a handler
 * that ignores SIGTERM (on timeout and at shutdown), a handler that forks and exits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countStatus, drop, killDaemons, rows, setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { chaosCommand, chaosRecords, isAlive, peakRss } from '../chaos/support.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

const MB = 1024 * 1024;

describe('hostile handler output', () => {
  it('hundreds of megabytes of stdout and stderr: daemon memory stays bounded, the stats line and the stderr tail are kept', async () => {
    const s = setup({ handler: { command: chaosCommand() }, concurrency: 4, retry: { maxRetries: 0, baseDelayMs: 10, maxDelayMs: 10 } });
    const d = startDaemon(s);
    await started(d);
    const pid = d.child.pid!;
    const before = peakRss(pid);
    // 3 x 64 MB to each of stdout and stderr (384 MB through the daemon), and one that fails.
    for (let i = 0; i < 3; i++) drop(s.inbox, `flood${i}.csv`, 'flood 64\n');
    const bad = drop(s.inbox, 'flood-fail.csv', 'flood 32 1\n');
    await waitFor(() => countStatus(s.db, 'completed') === 3 && statusOf(s.db, bad) === 'dead', { timeoutMs: 45_000 });
    const grew = peakRss(pid) - before;
    expect(grew, `peak RSS grew by ${Math.round(grew / MB)} MB while 416 MB of output passed through`).toBeLessThan(128 * MB);
    for (const r of rows(s.db).filter((x) => x.status === 'completed')) expect(r).toMatchObject({ records_total: 1, records_persisted: 1 });
    const err = String(rows(s.db).find((r) => r.file_url === bad)!.error_message);
    expect(err).toMatch(/FLOOD-LAST-ERROR-LINE\n?$/);
    expect(err.length).toBeLessThan(5_000);
  });

  it('broken stats lines are ignored (the file still completes) and logged; a handler that ignores SIGTERM is killed after the grace; a forking handler leaves no process behind', async () => {
    const s = setup({
      handler: { command: chaosCommand(), timeoutMs: 1_500, killGraceMs: 300 },
      concurrency: 8,
      retry: { maxRetries: 0, baseDelayMs: 10, maxDelayMs: 10 },
    });
    const d = startDaemon(s);
    await started(d);
    const broken = {
      'notjson.csv': 'stats {not json at all',
      'wrongtype.csv': 'stats {"total":"many","filtered":0,"persisted":1}',
      'negative.csv': 'stats {"total":-5,"filtered":0,"persisted":0}',
      'huge.csv': 'stats {"total":1e400,"filtered":0,"persisted":0}',
      'array.csv': 'stats [1,2,3]',
    };
    for (const [name, text] of Object.entries(broken)) drop(s.inbox, name, `${text}\n`);
    const good = drop(s.inbox, 'good.csv', 'stats {"total":3,"filtered":1,"persisted":2}\n');
    const pidfile = path.join(s.dir, 'forked.pid');
    const fork = drop(s.inbox, 'fork.csv', `fork ${pidfile}\n`);
    const stubborn = drop(s.inbox, 'stubborn.csv', 'stubborn\n');

    await waitFor(() => countStatus(s.db, 'completed') === Object.keys(broken).length + 2 && statusOf(s.db, stubborn) === 'dead', { timeoutMs: 30_000 });
    // Broken stats: completed with zero counts; one warning each for the four meant as stats
    // (an array is not a stats object and not an object: plain output, nothing to warn about).
    for (const name of Object.keys(broken)) {
      expect(rows(s.db).find((r) => r.file_url === path.join(s.inbox, name))).toMatchObject({ status: 'completed', records_total: 0, records_persisted: 0 });
    }
    expect(rows(s.db).find((r) => r.file_url === good)).toMatchObject({ records_total: 3, records_filtered: 1, records_persisted: 2 });
    const warned = d.lines.filter((l) => l.level === 'warn' && /stats line|does not parse|not an object/.test(String(l.msg)));
    const warnedFiles = new Set(warned.map((l) => path.basename(String(l.path))));
    expect([...warnedFiles].sort()).toEqual(['huge.csv', 'negative.csv', 'notjson.csv', 'wrongtype.csv', ...(warnedFiles.has('array.csv') ? ['array.csv'] : [])].sort());

    // The forked `sleep 30` is gone once its handler exited.
    expect(statusOf(s.db, fork)).toBe('completed');
    const child = Number(fs.readFileSync(pidfile, 'utf8'));
    await waitFor(() => !isAlive(child), { timeoutMs: 5_000, message: `forked child ${child} still alive` });

    // The stubborn one got SIGTERM at the timeout, ignored it, and was SIGKILLed 300 ms later.
    const st = rows(s.db).find((r) => r.file_url === stubborn)!;
    expect(String(st.error_message)).toMatch(/timed out after 1500 ms; SIGTERM, then SIGKILL after 300 ms/);
    const recs = chaosRecords(s.recordLog).filter((r) => r.file === stubborn);
    expect(recs.map((r) => r.ev)).toEqual(['start', 'ready', 'sigterm']);
    expect(isAlive(recs[0]!.pid)).toBe(false);
  });

  it('at shutdown, a handler that ignores SIGTERM is killed after the grace and its file given back; the daemon exits 0', async () => {
    const s = setup({ handler: { command: chaosCommand(), killGraceMs: 300 }, shutdownGraceMs: 300 });
    const d = startDaemon(s);
    await started(d);
    const file = drop(s.inbox, 'stubborn.csv', 'stubborn\n');
    const ready = await waitFor(() => chaosRecords(s.recordLog).find((r) => r.ev === 'ready'));
    const t0 = Date.now();
    d.child.kill('SIGTERM');
    const ex = await d.exited;
    expect(ex.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(isAlive(ready.pid)).toBe(false);
    expect(statusOf(s.db, file)).toBe('pending');
    expect(rows(s.db, 'SELECT outcome FROM file_attempts').map((a) => a.outcome)).toEqual(['released']);
  });
});
