/**
 * The database's file system fills up (SQLITE_FULL), on a small tmpfs mounted for the test.
 * Needs root (mount); skipped with the reason printed when the mount cannot be made.
 *
 * With the fallback journal on the same full file system, the promise is: the daemon stays up,
 * says what is wrong, loses nothing, and catches up once space returns. With `fallbackDir` on
 * another file system, files are handled during the outage too (degraded mode), each once, and
 * their outcomes reach the database after.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Daemon, type Setup, countStatus, drop, killDaemons, rows, setup, startDaemon, started } from '../helpers/daemon.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { chaosCommand, chaosRecords, filesUnder } from '../chaos/support.js';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';

const mounts: string[] = [];

function mountTmpfs(dir: string, size: string): string | null {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return (r.stderr || r.error?.message || `mount exited ${r.status}`).trim();
  mounts.push(dir);
  return null;
}

const mountProblem: string | null = (() => {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root: cannot mount a small tmpfs for the database';
  const probe = fs.mkdtempSync('/tmp/ckpt-mount-probe-');
  try {
    const err = mountTmpfs(probe, '1m');
    if (err) return `cannot mount a tmpfs (${err})`;
    spawnSync('umount', [probe]);
    mounts.pop();
    return null;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
})();
if (mountProblem) console.log(`skipping the disk-full tests: ${mountProblem}`);

afterEach(() => {
  killDaemons();
  for (const m of mounts.splice(0)) spawnSync('umount', ['-l', m]);
  cleanupTmpDirs();
});

/** How often the daemon has said it is back to normal mode. */
function backToNormal(d: Daemon): number {
  return d.lines.filter((l) => String(l.msg).startsWith('database available again')).length;
}

/** Writes zeros into `dir` until the file system refuses; returns the filler's path. */
function fill(dir: string): string {
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  // The last partial block too.
  try {
    fs.appendFileSync(filler, Buffer.alloc(512));
  } catch {
    // full
  }
  return filler;
}

/** What the ledger, the folders and the daemon say, for a failure message. */
function diagnose(s: Setup, d: Daemon): string {
  const byStatus = rows(s.db, 'SELECT status, count(*) AS n FROM file_checkpoints GROUP BY status');
  const said = d.lines.filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level))).map((l) => `${String(l.msg)} ${JSON.stringify(l.err ?? l.reason ?? l.error ?? '').slice(0, 160)}`);
  return [
    `rows: ${JSON.stringify(byStatus)}`,
    `inbox: ${fs.readdirSync(s.inbox).filter((n) => n !== LEDGER_MARKER).length} files, done: ${filesUnder(path.join(s.dir, 'done')).length}, handler starts: ${chaosRecords(s.recordLog).filter((r) => r.ev === 'start').length}`,
    `daemon alive: ${d.child.exitCode === null}; it said (warn and above, distinct):`,
    ...[...new Set(said)].slice(0, 25),
  ].join('\n');
}

/** The database on a small tmpfs; `fallbackDir`, when given, off it (on /tmp's file system). */
function setupOnTmpfs(fallbackDir?: string) {
  const mnt = tmpDir('ckpt-full-');
  const err = mountTmpfs(mnt, '8m');
  if (err) throw new Error(`mount: ${err}`);
  const s = setup({
    database: path.join(mnt, 'ckpt.db'),
    handler: { command: chaosCommand() },
    onSuccess: { moveTo: 'done' },
    createDirs: true,
    concurrency: 4,
    lockTimeoutMs: 1_000,
    ...(fallbackDir ? { fallbackDir } : {}),
  });
  s.db = path.join(mnt, 'ckpt.db');
  return { s, mnt };
}

describe('disk full under the database', () => {
  it.skipIf(mountProblem !== null)('SQLITE_FULL: the daemon stays up and says so, loses nothing, and catches up once space returns', async () => {
    const { s, mnt } = setupOnTmpfs();
    const d = startDaemon(s);
    await started(d);
    for (let i = 0; i < 3; i++) drop(s.inbox, `before${i}.csv`, `ok\nid B${i}\n`);
    await waitFor(() => countStatus(s.db, 'completed') === 3);

    const filler = fill(mnt);
    const N = 20;
    for (let i = 0; i < N; i++) drop(s.inbox, `during${i}.csv`, `ok\nid D${i}\n`);
    const full = await d.waitForLog((l) => l.level === 'error' && /SQLITE_FULL|disk is full|database or disk/i.test(JSON.stringify(l)), 30_000);
    expect(d.child.exitCode, 'the daemon must stay up while the disk is full').toBe(null);

    // A write probe cannot see a full disk (BEGIN IMMEDIATE and ROLLBACK write nothing): no
    // "back to normal" while there is no room, only to degrade again at the next write.
    expect(backToNormal(d)).toBe(0);
    fs.unlinkSync(filler);
    await waitFor(() => countStatus(s.db, 'completed') === N + 3 && filesUnder(path.join(s.dir, 'done')).length === N + 3, {
      timeoutMs: 45_000,
      message: 'every file completed and moved after space returned',
    }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${diagnose(s, d)}`);
    });
    const starts = chaosRecords(s.recordLog).filter((r) => r.ev === 'start');
    const perFile = new Map<string, number>();
    for (const r of starts) perFile.set(r.id, (perFile.get(r.id) ?? 0) + 1);
    expect(perFile.size).toBe(N + 3);
    expect([...perFile].filter(([, n]) => n > 1), 'no file ran twice').toEqual([]);
    expect(filesUnder(path.join(s.dir, 'done'))).toHaveLength(N + 3);
    expect(fs.readdirSync(s.inbox).filter((n) => n !== LEDGER_MARKER)).toEqual([]);
    expect(String(full.msg)).not.toBe('');
    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  // With the journal beside the database, on the same full file system, ckpt cannot record
  // outcomes durably and waits instead (the test above). `fallbackDir` on another file system
  // lets it handle files during the outage.
  it.skipIf(mountProblem !== null)('degraded mode: with fallbackDir on another file system, files are handled while the disk is full, each once, and every outcome is in the database after', async () => {
    const fallbackDir = path.join(tmpDir('ckpt-fallback-'), 'fallback');
    const { s, mnt } = setupOnTmpfs(fallbackDir);
    const d = startDaemon(s);
    await started(d);
    drop(s.inbox, 'before.csv', 'ok\nid B\n');
    await waitFor(() => countStatus(s.db, 'completed') === 1);
    const filler = fill(mnt);
    const N = 20;
    for (let i = 0; i < N; i++) drop(s.inbox, `during${i}.csv`, `ok\nid D${i}\n`);
    // Handled during the outage.
    await waitFor(() => chaosRecords(s.recordLog).filter((r) => r.ev === 'end' && r.id.startsWith('D')).length === N, { timeoutMs: 30_000 }).catch((err: unknown) => {
      const handled = chaosRecords(s.recordLog).filter((r) => r.ev === 'end' && r.id.startsWith('D')).length;
      const said = d.lines.filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level))).map((l) => `${String(l.msg)} ${JSON.stringify(l.err ?? l.reason ?? '').slice(0, 200)}`);
      throw new Error(`${(err as Error).message}: ${handled} of ${N} handled while the disk was full; the daemon said:\n${[...new Set(said)].join('\n')}`);
    });
    expect(countStatus(s.db, 'completed')).toBeLessThan(N + 1);
    // A write probe cannot see a full disk (BEGIN IMMEDIATE and ROLLBACK write nothing): no
    // "back to normal" while there is no room, only to degrade again at the next write.
    expect(backToNormal(d)).toBe(0);
    fs.unlinkSync(filler);
    await waitFor(() => countStatus(s.db, 'completed') === N + 1, { timeoutMs: 30_000 }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${diagnose(s, d)}`);
    });
    const starts = chaosRecords(s.recordLog).filter((r) => r.ev === 'start');
    expect(starts).toHaveLength(N + 1);
    expect(rows(s.db).every((r) => r.status === 'completed')).toBe(true);
    // No journal or claim marker left (the snapshot stays: it is kept on purpose). Markers go
    // just after the replay's commit, which this process may read first: polled.
    const left = () => filesUnder(fallbackDir).map((f) => path.relative(fallbackDir, f)).filter((f) => f.startsWith('journal-') || f.startsWith('claims'));
    await waitFor(() => left().length === 0).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; left in the fallback folder: ${left().join(', ')}`);
    });
    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
