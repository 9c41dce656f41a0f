/**
 * What a handler run and an after-action can reach, through the real CLI:
 * - no shell ever runs a handler: the handler's parent is the daemon itself, the file's path is
 *   one argument, and shell syntax in the name or in the configured argv is inert;
 * - after-actions write only inside the configured folders, whatever the file is called, and
 *   never through a symbolic link out of them;
 * - moveTo never overwrites, also when two daemons move same-named files at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countStatus, drop, killDaemons, rows, setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { nativeAddon } from '../../src/native/addon.js';
import { parseProcStat } from '../../src/run/orphans.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { chaosCommand, chaosRecords, filesUnder } from '../chaos/support.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

const HOSTILE = [
  'with space.csv',
  'tab\there.csv',
  'new\nline.csv',
  '-rf.csv',
  '--help.csv',
  '$(touch PWNED-subst).csv',
  '`touch PWNED-tick`.csv',
  'semi;touch PWNED-semi.csv',
  'pipe|touch PWNED-pipe.csv',
  'amp&&touch PWNED-amp.csv',
  "quote'\"both.csv",
  'back\\slash.csv',
  'glob*?[a-z]{x,y}.csv',
  'x..y..csv',
  '~user.csv',
  'наименование-名前-😀.csv',
];

describe('no shell', () => {
  it("the handler is the daemon's own child, gets the path as one argument, and shell syntax in names or argv does nothing", async () => {
    const inert = ['$(touch PWNED-argv1)', '`touch PWNED-argv2`', '; touch PWNED-argv3', '| touch PWNED-argv4', '&& touch PWNED-argv5', '${IFS}'];
    const s = setup({ handler: { command: [...chaosCommand(), ...inert] }, concurrency: 4 });
    const d = startDaemon(s);
    await started(d);
    for (const n of HOSTILE) drop(s.inbox, n, 'ok\n');
    await waitFor(() => countStatus(s.db, 'completed') === HOSTILE.length, { timeoutMs: 30_000 });
    const starts = chaosRecords(s.recordLog).filter((r) => r.ev === 'start');
    expect(starts.map((r) => path.basename(r.file)).sort()).toEqual([...HOSTILE].sort());
    for (const r of starts) {
      // Parent: the daemon itself (posix_spawn, src/run/native-launcher.ts), or without the
      // native part the daemon's spawn helper, a node process whose parent is the daemon; no sh
      // in between either way. argv: {path} + the six inert items, unsplit.
      const parent = parseProcStat(fs.readFileSync(`/proc/${String(r.ppid)}/stat`, 'utf8'));
      const daemonIs = nativeAddon() !== null ? r.ppid : parent?.ppid;
      expect({ file: path.basename(r.file), parent: r.parentComm, daemon: daemonIs, argc: r.argc }).toEqual({
        file: path.basename(r.file),
        parent: 'node',
        daemon: d.child.pid,
        argc: 1 + inert.length,
      });
    }
    // The handler's and the daemon's working folder is s.dir; the test's is the repository.
    const pwned = [...filesUnder(s.dir).map((f) => path.basename(f)), ...fs.readdirSync(REPO)].filter((n) => n.startsWith('PWNED'));
    expect(pwned).toEqual([]);
  });
});

describe('after-actions stay inside the configured folders', () => {
  it('hostile names are moved into done/ and dead/ under the same names, nothing is written anywhere else', async () => {
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, onDead: { moveTo: 'dead' }, createDirs: true, concurrency: 4 });
    const outside = tmpDir('ckpt-outside-');
    fs.writeFileSync(path.join(outside, 'keep.csv'), 'outside\n');
    const d = startDaemon(s);
    await started(d);
    HOSTILE.forEach((n, i) => drop(s.inbox, n, i % 2 === 0 ? 'ok\n' : 'permanent\n'));
    await waitFor(() => countStatus(s.db, 'completed') + countStatus(s.db, 'dead') === HOSTILE.length && filesUnder(s.inbox).length === 0, { timeoutMs: 30_000 });
    expect(fs.readdirSync(path.join(s.dir, 'done')).sort()).toEqual(HOSTILE.filter((_, i) => i % 2 === 0).sort());
    expect(fs.readdirSync(path.join(s.dir, 'dead')).sort()).toEqual(HOSTILE.filter((_, i) => i % 2 === 1).sort());
    // Everything in the test folder is ckpt's own or in inbox/done/dead.
    const top = fs.readdirSync(s.dir).filter((n) => !/^ckpt\.db(-wal|-shm|\.fallback)?$/.test(n)).sort();
    expect(top).toEqual(['ckpt.config.json', 'dead', 'done', 'inbox', 'record.log']);
    expect(filesUnder(outside)).toEqual([path.join(outside, 'keep.csv')]);
  });

  it('a symbolic link inside done/ leading out is refused; the file stays, the outside is untouched', async () => {
    const outside = tmpDir('ckpt-outside-');
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true });
    fs.mkdirSync(path.join(s.dir, 'done'));
    fs.symlinkSync(outside, path.join(s.dir, 'done', 'sub'));
    fs.mkdirSync(path.join(s.inbox, 'sub'));
    const d = startDaemon(s);
    await started(d);
    const file = drop(path.join(s.inbox, 'sub'), 'x.csv', 'ok\n');
    await waitFor(() => statusOf(s.db, file) === 'completed');
    const line = await d.waitForLog((l) => l.path === file && l.msg === 'after-action failed; the file stays where it is');
    expect(line.error).toMatch(/symbolic link/);
    expect(line.err).toBeUndefined();
    expect(fs.existsSync(file)).toBe(true);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it("a folder swapped for a symbolic link to the outside while its file is handled: nothing outside is moved, or handled", async () => {
    const outside = tmpDir('ckpt-outside-');
    fs.writeFileSync(path.join(outside, 'x.csv'), 'ok\nid OUTSIDE\n');
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true });
    fs.mkdirSync(path.join(s.inbox, 'a'));
    const d = startDaemon(s);
    await started(d);
    const file = drop(path.join(s.inbox, 'a'), 'x.csv', 'sleep 800\nid INSIDE\n');
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'start' && r.id === 'INSIDE'));
    // While the handler runs: inbox/a becomes a link to the outside folder, which has an x.csv.
    fs.renameSync(path.join(s.inbox, 'a'), path.join(s.inbox, 'a-old'));
    fs.symlinkSync(outside, path.join(s.inbox, 'a'));
    await d.waitForLog((l) => l.path === file && l.msg === 'completed', 15_000);
    // Give a re-discovery (if any) time to run it.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(fs.readFileSync(path.join(outside, 'x.csv'), 'utf8')).toBe('ok\nid OUTSIDE\n');
    expect(fs.readdirSync(outside)).toEqual(['x.csv']);
    // (INSIDE may run twice: inbox/a-old/x.csv is a new path, found by the watcher like any
    // renamed-in file.) The outside file must never reach the handler.
    const handled = chaosRecords(s.recordLog).filter((r) => r.ev === 'start');
    expect(
      handled.filter((r) => r.id === 'OUTSIDE').map((r) => `${r.file} (attempt ${r.attempt})`),
      'a file outside the watched folder, reached through the swapped-in link, was handed to the handler',
    ).toEqual([]);
  });
});

describe('moveTo never overwrites', () => {
  it('two daemons, two watched folders, same names at once: every file kept under its own name', async () => {
    const s = setup({ watch: [{ dir: 'inbox' }, { dir: 'inbox2' }], handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 4 });
    fs.mkdirSync(path.join(s.dir, 'done'));
    fs.writeFileSync(path.join(s.dir, 'done', 'n0.csv'), 'pre-existing\n');
    const a = startDaemon(s);
    const b = startDaemon(s);
    await Promise.all([started(a), started(b)]);
    const N = 15;
    for (let i = 0; i < N; i++) {
      drop(s.inbox, `n${i}.csv`, `ok\nid A${i}\n`);
      drop(path.join(s.dir, 'inbox2'), `n${i}.csv`, `ok\nid B${i}\n`);
    }
    await waitFor(() => countStatus(s.db, 'completed') === 2 * N && filesUnder(path.join(s.dir, 'done')).length === 2 * N + 1, { timeoutMs: 30_000 });
    const contents = filesUnder(path.join(s.dir, 'done')).map((f) => fs.readFileSync(f, 'utf8').split('\n')[1] ?? fs.readFileSync(f, 'utf8'));
    expect(contents.sort()).toEqual(['', ...Array.from({ length: N }, (_, i) => [`id A${i}`, `id B${i}`]).flat()].sort());
    expect(fs.readFileSync(path.join(s.dir, 'done', 'n0.csv'), 'utf8')).toBe('pre-existing\n');
    expect(rows(s.db).every((r) => r.attempts === 1)).toBe(true);
  });
});
