/**
 * Issue 4 end to end: real `ckpt run` daemons (the built CLI) while the real sqlite3 shell holds
 * the database locked, or after the file was damaged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, countStatus, drop, killDaemons, overlaps, records, setup, startDaemon, started } from '../helpers/daemon.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { readJournal } from '../../src/store/fallback/journal.js';
import { CORRUPTIONS, corrupt, corruptFileOf, dbRows, holdLock, journalsIn, killShells, markerDirs } from './helpers.js';


afterEach(() => {
  killDaemons();
  killShells();
  cleanupTmpDirs();
});

const degradedLine = (l: Record<string, unknown>) => typeof l.msg === 'string' && l.msg.startsWith('database unavailable: switching to degraded mode');
const backLine = (l: Record<string, unknown>) => typeof l.msg === 'string' && l.msg.startsWith('database available again');

function startsPerFile(s: ReturnType<typeof setup>): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of records(s)) if (r.ev === 'start') m.set(r.file, (m.get(r.file) ?? 0) + 1);
  return m;
}

describe('daemons while the database is locked or corrupt', () => {
  it('two daemons, the shell holds BEGIN EXCLUSIVE for 10 s while 30 files are dropped: each handled once during the lock, all completed soon after', async () => {
    const s = setup({ lockTimeoutMs: 1_000, concurrency: 4 });
    const a = startDaemon(s);
    const b = startDaemon(s);
    await Promise.all([started(a), started(b)]);
    const shell = await holdLock(s.db, 'begin-exclusive');
    const lockedAt = Date.now();
    const N = 30;
    for (let i = 0; i < N; i++) drop(s.inbox, `locked-${i}.csv`, `row ${i}\n`);
    // Handled while the shell still holds the lock (10 s; a loaded 2-core box gets up to 20).
    await waitFor(() => records(s).filter((r) => r.ev === 'end').length >= N, { timeoutMs: 20_000, message: 'all 30 handled during the lock' });
    expect(countStatus(s.db, 'completed')).toBe(0);
    await a.waitForLog(degradedLine);
    await b.waitForLog(degradedLine);
    // The operator sees it: `ckpt status` reads through the lock (WAL) and the state files.
    const st = await cli(['status', '--json', '--config', s.config], { cwd: s.dir });
    expect(st.code, st.stderr).toBe(0);
    const report = JSON.parse(st.stdout) as { mode: { state: string; since: string | null; reason: string | null; workers: string[] } };
    expect(report.mode.state).toBe('degraded');
    expect(report.mode.workers).toHaveLength(2);
    expect(report.mode.since).not.toBeNull();
    expect(report.mode.reason).toMatch(/lock/i);
    // Hold it the full 10 s (the scenario): rescans meanwhile must not run anything again.
    await waitFor(() => Date.now() - lockedAt >= 10_000, { timeoutMs: 15_000 });
    await shell.release();
    const releasedAt = Date.now();
    await waitFor(() => countStatus(s.db, 'completed') === N, { timeoutMs: 10_000, message: 'all 30 completed after the release' });
    expect(Date.now() - releasedAt).toBeLessThan(10_000);
    await a.waitForLog(backLine);
    await b.waitForLog(backLine);
    const per = startsPerFile(s);
    expect(per.size).toBe(N);
    expect([...per.values()].every((n) => n === 1)).toBe(true);
    expect(overlaps(records(s))).toEqual([]);
    expect(journalsIn(s.db)).toEqual([]);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);
    expect(markerDirs(s.db)).toEqual([]);
  });

  it('SIGKILL during fallback: restarted, nothing is lost and nothing runs twice', async () => {
    const s = setup({ lockTimeoutMs: 1_000 });
    const a = startDaemon(s);
    await started(a);
    const shell = await holdLock(s.db, 'begin-exclusive');
    for (let i = 0; i < 8; i++) drop(s.inbox, `k-${i}.csv`, `row ${i}\n`);
    // Killed once every outcome is durable (in the journal): a handler that ended but whose
    // outcome was not yet recorded runs again after a crash, in degraded mode as in normal mode.
    const completedInJournal = () => journalsIn(s.db).flatMap((j) => readJournal(j).entries).filter((e) => e.t === 'complete').length;
    await waitFor(() => completedInJournal() >= 8, { timeoutMs: 15_000 });
    a.child.kill('SIGKILL');
    await a.exited;
    expect(journalsIn(s.db)).toHaveLength(1);
    await shell.release();
    const b = startDaemon(s);
    await started(b);
    await waitFor(() => countStatus(s.db, 'completed') === 8, { timeoutMs: 10_000 });
    drop(s.inbox, 'after.csv', 'x\n');
    await waitFor(() => countStatus(s.db, 'completed') === 9, { timeoutMs: 10_000 });
    expect([...startsPerFile(s).values()].every((n) => n === 1)).toBe(true);
    expect(journalsIn(s.db)).toEqual([]);
    b.child.kill('SIGTERM');
    expect((await b.exited).code).toBe(0);
  });

  it('locking_mode=EXCLUSIVE held by another process when the daemon starts: handled without re-running completed files', async () => {
    const s = setup({ lockTimeoutMs: 1_000 });
    drop(s.inbox, 'old.csv', 'a\n');
    const a = startDaemon(s);
    await waitFor(() => countStatus(s.db, 'completed') === 1);
    a.child.kill('SIGTERM');
    await a.exited;
    const shell = await holdLock(s.db, 'locking-mode-exclusive');
    drop(s.inbox, 'new.csv', 'b\n');
    const b = startDaemon(s);
    await b.waitForLog(degradedLine);
    await waitFor(() => records(s).some((r) => r.ev === 'end' && r.file.endsWith('new.csv')), { timeoutMs: 15_000 });
    await shell.release();
    await waitFor(() => countStatus(s.db, 'completed') === 2, { timeoutMs: 10_000 });
    expect(records(s).filter((r) => r.ev === 'start' && r.file.endsWith('old.csv'))).toHaveLength(1);
    b.child.kill('SIGTERM');
    expect((await b.exited).code).toBe(0);
  });

  for (const kind of CORRUPTIONS) {
    it(`${kind}: the daemon stays up, keeps the corrupt file, handles new files once, re-runs no salvaged file`, async () => {
      const s = setup({ lockTimeoutMs: 1_000 });
      for (let i = 0; i < 20; i++) drop(s.inbox, `done-${i}.csv`, `row ${i}\n`);
      const a = startDaemon(s);
      await waitFor(() => countStatus(s.db, 'completed') === 20, { timeoutMs: 20_000 });
      a.child.kill('SIGTERM');
      expect((await a.exited).code).toBe(0);
      corrupt(s.db, kind);
      const damaged = fs.readFileSync(s.db);

      const b = startDaemon(s);
      await started(b);
      const aside = corruptFileOf(s.db);
      expect(aside).toBeDefined();
      expect(fs.readFileSync(aside!).equals(damaged)).toBe(true);
      const survived = new Set(dbRows(s.db, `SELECT file_url FROM file_checkpoints WHERE status = 'completed'`).map((r) => String(r.file_url)));
      drop(s.inbox, 'fresh.csv', 'new\n');
      await waitFor(() => records(s).some((r) => r.ev === 'end' && r.file.endsWith('fresh.csv')), { timeoutMs: 15_000 });
      await waitFor(() => countStatus(s.db, 'completed') === 21, { timeoutMs: 15_000 });
      const per = startsPerFile(s);
      for (const f of survived) expect(per.get(f), `${f} re-run`).toBe(1);
      expect(per.get(path.join(s.inbox, 'fresh.csv'))).toBe(1);
      b.child.kill('SIGTERM');
      expect((await b.exited).code).toBe(0);
    });
  }
});
