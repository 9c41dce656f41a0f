/**
 * Hostile files through the real CLI: empty, huge (sparse, never read by ckpt itself), not
 * readable, gone before their turn, replaced while handled, folders named like data files,
 * FIFOs, symlinks out of the watched folder, symlink loops.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countStatus, drop, killDaemons, rows, setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { otherUser, runningAsRoot } from '../helpers/other-user.js';
import { bytesRead, chaosCommand, chaosRecords, killMyDaemons, replaceAtomically, startDaemonWith, whereIs } from '../chaos/support.js';

afterEach(() => {
  killDaemons();
  killMyDaemons();
  cleanupTmpDirs();
});

const GB = 2 ** 30;

/** A user that mode 000 really locks out: the test's own when not root, else nobody (65534). */
const nobody = otherUser(65534);
const asSelf = !runningAsRoot;
if (!asSelf && nobody.skipReason !== null) console.log(`skipping the unreadable-file test: ${nobody.skipReason}`);

describe('hostile files', () => {
  it('empty, huge sparse, folder named like a file, FIFOs, symlinks out of the root and symlink loops: each handled once or skipped, the daemon never blocked', async () => {
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 3 });
    const outside = tmpDir('ckpt-outside-');
    fs.writeFileSync(path.join(outside, 'secret.csv'), 'ok\nid SECRET\n');
    fs.mkdirSync(path.join(outside, 'dir'));
    fs.writeFileSync(path.join(outside, 'dir', 'x.csv'), 'ok\nid OUTSIDE-X\n');
    const outsideBefore = snapshot(outside);

    // Present at start-up (found by the start-up scan) ...
    mkfifo(path.join(s.inbox, 'early-pipe.csv'));
    fs.symlinkSync(path.join(outside, 'secret.csv'), path.join(s.inbox, 'link.csv'));
    fs.symlinkSync(path.join(outside, 'dir'), path.join(s.inbox, 'linkdir'));
    fs.symlinkSync('loop-b.csv', path.join(s.inbox, 'loop-a.csv'));
    fs.symlinkSync('loop-a.csv', path.join(s.inbox, 'loop-b.csv'));
    fs.symlinkSync('self.csv', path.join(s.inbox, 'self.csv'));
    fs.mkdirSync(path.join(s.inbox, 'sub'));
    fs.symlinkSync('..', path.join(s.inbox, 'sub', 'up'));
    fs.mkdirSync(path.join(s.inbox, 'folder.csv'));

    const d = startDaemon(s);
    await started(d);
    const pid = d.child.pid!;
    const readBefore = bytesRead(pid);

    // ... and dropped while it runs (found by events).
    mkfifo(path.join(s.inbox, 'late-pipe.csv'));
    drop(s.inbox, 'zero.csv', '');
    // 4 GB, sparse: written atomically, then the size set with ftruncate.
    const hugeTmp = path.join(s.inbox, '.huge');
    fs.writeFileSync(hugeTmp, 'ok\nid HUGE\n');
    fs.truncateSync(hugeTmp, 4 * GB);
    fs.renameSync(hugeTmp, path.join(s.inbox, 'huge.csv'));
    drop(path.join(s.inbox, 'folder.csv'), 'inner.csv', 'ok\nid INNER\n');
    drop(s.inbox, 'sentinel.csv', 'ok\nid SENTINEL\n');

    const expected = ['zero.csv', 'huge.csv', 'folder.csv/inner.csv', 'sentinel.csv'];
    await waitFor(() => countStatus(s.db, 'completed') === expected.length, { timeoutMs: 30_000 });
    // One more periodic rescan over the FIFOs and the loops: still nothing, nothing stuck.
    const scans = d.lines.filter((l) => l.msg === 'folder scan finished').length;
    await d.waitForLog(() => d.lines.filter((l) => l.msg === 'folder scan finished').length > scans + 1, 20_000);

    expect(rows(s.db).map((r) => path.relative(s.inbox, String(r.file_url))).sort()).toEqual([...expected].sort());
    const starts = chaosRecords(s.recordLog).filter((r) => r.ev === 'start');
    expect(starts.map((r) => path.relative(s.inbox, r.file)).sort()).toEqual([...expected].sort());
    expect(starts.find((r) => r.file.endsWith('zero.csv'))?.size).toBe(0);
    expect(starts.find((r) => r.file.endsWith('huge.csv'))?.size).toBe(4 * GB);
    // ckpt itself never read the 4 GB (stat, fingerprint and a same-disk move only).
    const read = bytesRead(pid) - readBefore;
    expect(read, `the daemon read ${read} bytes`).toBeLessThan(64 * 1024 * 1024);
    expect(fs.statSync(path.join(s.dir, 'done', 'huge.csv')).size).toBe(4 * GB);
    // Outside the root: nothing read, moved or changed; the links are still in the inbox.
    expect(snapshot(outside)).toEqual(outsideBefore);
    for (const l of ['link.csv', 'linkdir', 'loop-a.csv', 'self.csv', 'sub/up']) expect(fs.lstatSync(path.join(s.inbox, l)).isSymbolicLink()).toBe(true);
    for (const p of ['early-pipe.csv', 'late-pipe.csv']) expect(fs.lstatSync(path.join(s.inbox, p)).isFIFO()).toBe(true);
    // The folder named like a data file stays a folder; its content was handled.
    expect(fs.statSync(path.join(s.inbox, 'folder.csv')).isDirectory()).toBe(true);
    expect(fs.existsSync(path.join(s.dir, 'done', 'folder.csv', 'inner.csv'))).toBe(true);
    expect(d.child.exitCode).toBe(null);
    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it('a file that vanishes between discovery and claim is settled once with the reason, never run', async () => {
    const s = setup({ handler: { command: chaosCommand() }, concurrency: 1 });
    const d = startDaemon(s);
    await started(d);
    // The only slot is busy, so the next file waits in the database, discovered but unclaimed.
    drop(s.inbox, 'hold.csv', 'sleep 1500\nid HOLD\n');
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'start' && r.id === 'HOLD'));
    const gone = drop(s.inbox, 'gone.csv', 'ok\nid GONE\n');
    await waitFor(() => statusOf(s.db, gone) === 'pending');
    fs.unlinkSync(gone);
    await waitFor(() => statusOf(s.db, gone) === 'dead', { timeoutMs: 15_000 });
    const row = rows(s.db).find((r) => r.file_url === gone)!;
    expect(row).toMatchObject({ status: 'dead', attempts: 1, error_message: 'file vanished before it was handled' });
    // One attempt, settled with the reason (its outcome column says 'dead': the runner records
    // a permanent failure's attempt as 'dead', the kind 'vanished' is in the error message).
    const att = rows(s.db, `SELECT outcome, error_message FROM file_attempts WHERE file_url = '${gone.replace(/'/g, "''")}'`);
    expect(att).toEqual([{ outcome: expect.stringMatching(/^(vanished|dead)$/), error_message: 'file vanished before it was handled' }]);
    expect(chaosRecords(s.recordLog).filter((r) => r.id === 'GONE')).toEqual([]);
  });

  it('a file replaced while it is handled: the first content completes and stays put, the new content runs as version 2 and is moved', async () => {
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 2 });
    const d = startDaemon(s);
    await started(d);
    const file = drop(s.inbox, 'rep.csv', 'sleep 800\nid V1\n');
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'start' && r.id === 'V1'));
    replaceAtomically(file, 'ok\nid V2\n');
    await waitFor(() => rows(s.db).some((r) => r.file_url === file && r.version === 2 && r.status === 'completed'), { timeoutMs: 20_000 });
    await waitFor(() => !fs.existsSync(file));
    const first = d.lines.find((l) => l.msg === 'completed' && l.path === file && l.attempt === 1);
    expect(first?.afterAction).toBe('keep (changed while handled)');
    expect(chaosRecords(s.recordLog).filter((r) => r.ev === 'start').map((r) => r.id)).toEqual(['V1', 'V2']);
    expect(whereIs('V2', s.inbox, path.join(s.dir, 'done'))).toEqual([path.join(s.dir, 'done', 'rep.csv')]);
    const att = rows(s.db, 'SELECT version, attempt, outcome FROM file_attempts ORDER BY id');
    expect(att).toEqual([
      { version: 1, attempt: 1, outcome: 'completed' },
      { version: 2, attempt: 1, outcome: 'completed' },
    ]);
  });

  it.skipIf(!asSelf && nobody.skipReason !== null)('an unreadable file (mode 000, daemon not root) fails with a clear reason and goes dead; the handler never runs on it', async () => {
    const as = asSelf ? undefined : nobody;
    const s = setup({ handler: { command: chaosCommand(as) }, retry: { maxRetries: 1, baseDelayMs: 20, maxDelayMs: 50 } });
    const locked = path.join(s.inbox, 'locked.csv');
    fs.writeFileSync(locked, 'ok\nid LOCKED\n');
    fs.chmodSync(locked, 0o000);
    as?.own(s.dir);
    const d = as ? startDaemonWith(s, { as }) : startDaemon(s);
    await started(d);
    const ok = drop(s.inbox, 'fine.csv', 'ok\nid FINE\n');
    as?.own(ok);
    await waitFor(() => statusOf(s.db, locked) === 'dead' && statusOf(s.db, ok) === 'completed', { timeoutMs: 20_000 });
    const row = rows(s.db).find((r) => r.file_url === locked)!;
    expect(row).toMatchObject({ status: 'dead', attempts: 2 });
    expect(String(row.error_message)).toMatch(/cannot read file: EACCES/);
    expect(chaosRecords(s.recordLog).map((r) => r.id)).not.toContain('LOCKED');
    expect(d.lines.some((l) => l.msg === 'running as root: handlers run as root too. Run ckpt as a dedicated user (see config/ckpt.service)')).toBe(false);
  });
});

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr.toString()}`);
}

/** name -> size and mtime of every entry below `dir`: proves nothing there changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      out[path.relative(dir, p)] = `${st.size}:${st.mtimeMs}`;
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}
