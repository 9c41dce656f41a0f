/**
 * Retention in a real `ckpt run`: the scheduled purge removes completed and dead files past
 * their windows (history aged with the real sqlite3 shell), leaves the tombstones `ckpt purge`
 * leaves so that a purged file put back does not run again, logs one line per pass, and takes
 * changed windows on SIGHUP.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countStatus, type Daemon, drop, killDaemons, records, rows, type Setup, setup, startDaemon, started } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { hasSqlite3 } from '../cli/sqlite3-shell.js';
import { holdLock, killShells } from '../fallback/helpers.js';

afterEach(() => {
  killDaemons();
  killShells();
  cleanupTmpDirs();
});

type Line = Record<string, unknown>;
const DAY = 86_400_000;
const isRetentionLine = (l: Line) => typeof l.msg === 'string' && l.msg.startsWith('retention: purged');

/** Writes with the sqlite3 shell (the daemon keeps running: WAL lets it). */
function sqlite3(db: string, sql: string): void {
  const r = spawnSync('sqlite3', ['-bail', '-cmd', '.timeout 5000', db, sql], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

/** Rewrites the retention windows in the config file and sends SIGHUP; resolves once applied. */
async function newWindows(s: Setup, d: Daemon, retention: Record<string, string>): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(s.config, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(s.config, JSON.stringify({ ...cfg, retention }));
  const from = d.lines.length;
  d.child.kill('SIGHUP');
  await waitFor(() => d.lines.slice(from).find((l) => l.msg === 'configuration reloaded (changed: retention)'), { message: 'the reload' });
}

/** Moves a finished row's times back, as if it finished `ms` ago. */
function age(db: string, file: string, ms: number): void {
  const t = new Date(Date.now() - ms).toISOString();
  sqlite3(db, `UPDATE file_checkpoints SET updated_at = '${t}', completed_at = '${t}' WHERE file_url = '${file}'`);
}

describe.skipIf(!hasSqlite3())('retention in the daemon', () => {
  it('purges what is past its window, keeps tombstones (a purged file put back does not run), logs the pass, and takes new windows on SIGHUP', async () => {
    const s = setup({ retention: { completed: '30d', dead: '30d' } });
    const d = startDaemon(s);
    await started(d);
    const [a, b, c, e] = [drop(s.inbox, 'a.csv', 'ok\n'), drop(s.inbox, 'b.csv', 'ok\n'), drop(s.inbox, 'c.csv', 'permanent\n'), drop(s.inbox, 'e.csv', 'permanent\n')];
    await waitFor(() => countStatus(s.db, 'completed') === 2 && countStatus(s.db, 'dead') === 2, { message: '2 completed, 2 dead' });
    // The pass shortly after the start: nothing is 30 days old yet.
    const first = await d.waitForLog(isRetentionLine);
    expect(first).toMatchObject({ level: 'info', removed: { completed: 0, dead: 0, tombstones: 0 } });
    expect(d.lines.filter(isRetentionLine)).toHaveLength(1);

    // a: completed 3 days ago (past 1d). b: 12 hours ago (kept). c: dead 3 days ago (past 2d).
    // e: dead 36 hours ago: past the completed window, not the dead one (kept).
    age(s.db, a, 3 * DAY);
    age(s.db, b, DAY / 2);
    age(s.db, c, 3 * DAY);
    age(s.db, e, 1.5 * DAY);
    await newWindows(s, d, { completed: '1d', dead: '2d' });
    const pass = await waitFor(() => d.lines.filter(isRetentionLine)[1], { message: 'the pass after the reload' });
    expect(pass).toMatchObject({ removed: { completed: 1, dead: 1, tombstones: 0 } });
    const cutoff = pass.cutoff as { completed: string; dead: string };
    expect(Date.parse(cutoff.dead)).toBeLessThan(Date.parse(cutoff.completed));
    expect(Date.now() - Date.parse(cutoff.completed)).toBeGreaterThanOrEqual(DAY);

    expect(rows(s.db).map((r) => [path.basename(String(r.file_url)), r.status])).toEqual([
      ['b.csv', 'completed'],
      ['e.csv', 'dead'],
    ]);
    expect(rows(s.db, 'SELECT file_url, status FROM file_tombstones ORDER BY file_url')).toEqual([
      { file_url: a, status: 'completed' },
      { file_url: c, status: 'dead' },
    ]);
    expect(rows(s.db, `SELECT count(*) AS n FROM file_attempts WHERE file_url IN ('${a}', '${c}')`)).toEqual([{ n: 0 }]);

    // a taken out and put back (same file, same fingerprint): found ready again, held by its tombstone.
    const from = d.lines.length;
    const out = path.join(s.dir, 'a.csv');
    fs.renameSync(a, out);
    // Back only once a scan saw it gone (4 files left), so the watcher sees it arrive.
    await waitFor(() => d.lines.slice(from).find((l) => l.msg === 'folder scan finished' && l.entries === 4), { message: 'a scan without a' });
    fs.renameSync(out, a);
    await waitFor(() => d.lines.slice(from).find((l) => l.msg === 'discovered' && l.tombstoned === 1 && l.inserted === 0), { message: 'a seen again, held by its tombstone' });
    const f = drop(s.inbox, 'f.csv', 'ok\n');
    await waitFor(() => countStatus(s.db, 'completed') === 2, { message: 'f completed' });
    const starts = (file: string) => records(s).filter((r) => r.ev === 'start' && r.file === file).length;
    expect([starts(a), starts(c), starts(f)]).toEqual([1, 1, 1]);
    expect(d.lines.filter((l) => String(l.msg).startsWith('retention') && l.level !== 'info')).toEqual([]);
  });

  it('a pass that meets a locked database is skipped with a warning; the daemon carries on, and the next pass purges', async () => {
    const s = setup({ lockTimeoutMs: 500, retention: { completed: '30d' } });
    const d = startDaemon(s);
    await started(d);
    const a = drop(s.inbox, 'a.csv', 'ok\n');
    await waitFor(() => countStatus(s.db, 'completed') === 1, { message: 'a completed' });
    await d.waitForLog(isRetentionLine);
    age(s.db, a, 3 * DAY);

    const shell = await holdLock(s.db, 'begin-exclusive');
    await newWindows(s, d, { completed: '1d' });
    const skipped = await d.waitForLog((l) => l.msg === 'retention: database unavailable, purge skipped until the next pass');
    expect(skipped.level).toBe('warn');
    await shell.release();
    await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('database available again'), 30_000);

    await newWindows(s, d, { completed: '2d' });
    const pass = await waitFor(() => d.lines.filter(isRetentionLine)[1], { message: 'the pass after the lock' });
    expect(pass).toMatchObject({ removed: { completed: 1, dead: 0, tombstones: 0 } });
    expect(rows(s.db)).toEqual([]);
    expect(d.child.exitCode).toBeNull();
  });
});
