/**
 * `ckpt top` in a real terminal: tmux runs a shell, the test types the command, presses keys and
 * reads the screen as a person would see it, while a real daemon handles real files, while the
 * sqlite3 shell holds the database locked, and after a handler failed.
 */
import fs from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { drop, killDaemons, setup, startDaemon, started } from '../helpers/daemon.js';
import { PROMPT, Tmux, hasTmux, killTmuxServers } from '../helpers/tmux.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { holdLock, killShells } from '../fallback/helpers.js';
import { cliEntry, killAll } from './cli-helper.js';
import { makeWorkspace, seedStore, WORKER } from './workspace.js';

afterEach(() => {
  killTmuxServers();
  killShells();
  killDaemons();
  killAll();
  cleanupTmpDirs();
});

beforeAll(() => {
  console.log(`ckpt under test: node ${cliEntry().join(' ')}`);
});

/** The command line typed at the pane's shell; the shell reports how top ended. */
function topLine(config: string): string {
  return [process.execPath, ...cliEntry(), 'top', '--config', config].join(' ') + '; echo "top exited $?"';
}

/**
 * With CKPT_TOP_CAPTURE=FILE, the screens this test reads are written to FILE (docs/top.md shows
 * them: real output, not a mock-up).
 */
function capture(label: string, screen: string): void {
  const file = process.env.CKPT_TOP_CAPTURE;
  if (file) fs.appendFileSync(file, `--- ${label}\n${screen.replace(/\s+$/, '')}\n`);
}

/** The numbers of a rates row (`last 1m  0.1  0.08  0.03`): discovered, completed, failed. */
function rates(text: string, window: string): number[] | null {
  const n = '(\\d+(?:\\.\\d+)?)';
  const m = new RegExp(`^last ${window}\\s+${n}\\s+${n}\\s+${n}$`, 'm').exec(text);
  return m === null ? null : m.slice(1).map(Number);
}

// Skipped without tmux, except in CI (.ci/run installs it), where its absence must fail.
describe.skipIf(!hasTmux() && !process.env.CI)('ckpt top in tmux', () => {
  it('while files flow, after a failure, during a lock, on resize; q quits back to the shell', async () => {
    const s = setup({ concurrency: 3, lockTimeoutMs: 1_000, retry: { maxRetries: 1, baseDelayMs: 50, maxDelayMs: 100 } });
    const d = startDaemon(s);
    await started(d);
    const workerId = await d.waitForLog((l) => typeof l.workerId === 'string').then((l) => String(l.workerId));
    const term = new Tmux(s.dir, 100, 40);
    await term.typeLine(topLine(s.config));
    await term.waitForScreen((t) => t.includes('ckpt top') && t.includes('IN FLIGHT 0'), 'the first frame');

    // Two long files in flight, one after the other; quick ones and a failing one flow past them.
    drop(s.inbox, 'slow-first.csv', 'sleep 60000\n');
    await term.waitForScreen((t) => t.includes('slow-first.csv'), 'the first slow file in flight');
    drop(s.inbox, 'slow-second.csv', 'sleep 60000\n');
    for (let i = 0; i < 5; i++) drop(s.inbox, `quick-${i}.csv`, `row ${i}\n`);
    drop(s.inbox, 'broken.csv', 'fail\n');
    const flowing = await term.waitForScreen(
      (t) => t.includes('IN FLIGHT 2') && /completed 5\b/.test(t) && t.includes('dead 1') && (rates(t, '1m')?.[1] ?? 0) > 0,
      'files in flight, completed, dead and rates',
    );
    capture('flowing', flowing);
    const lines = flowing.split('\n');
    const first = lines.findIndex((l) => l.endsWith('slow-first.csv'));
    const second = lines.findIndex((l) => l.endsWith('slow-second.csv'));
    expect(first, flowing).toBeGreaterThan(0);
    // Longest first, each with its attempt and worker.
    expect(second).toBe(first + 1);
    expect(lines[first]).toMatch(new RegExp(`^\\s+\\d+(\\.\\d)?s\\s+1\\s+${workerId}\\s+${s.inbox}/slow-first\\.csv$`));
    expect(rates(flowing, '1m')![0]).toBeGreaterThan(0);
    expect(rates(flowing, '1m')![2]).toBeGreaterThan(0);
    // The failure and its one-line error, both attempts, most recent first.
    const failures = lines.filter((l) => l.includes('broken.csv') && l.includes('exit code 1: recorder: told to fail'));
    expect(failures, flowing).toHaveLength(2);
    expect(failures[0]).toMatch(/ago\s+2\s/);
    // The worker, live, with its heartbeat.
    expect(flowing).toMatch(new RegExp(`ago\\s+live\\s+normal\\s+${d.child.pid}\\s+\\S+\\s+${workerId}`));
    expect(flowing).toMatch(/^mode\s+normal$/m);

    // Narrower: redrawn to the new width at once, nothing left over from the wider frame.
    expect(Math.max(...lines.map((l) => l.length))).toBeGreaterThan(60);
    term.resize(60, 30);
    const narrow = await term.waitForScreen((t, ls) => ls.length === 30 && ls.every((l) => l.length <= 60) && t.includes('IN FLIGHT 2'), 'a frame 60 wide');
    expect(narrow).toMatch(/…\S*slow-first\.csv$/m);
    capture('narrow', narrow);
    expect(narrow.split('\n')[0]).toMatch(/^ckpt top {2}\d\d:\d\d:\d\d UTC {2}q quits/);
    term.resize(150, 40);
    await term.waitForScreen((t) => t.includes(`${s.inbox}/slow-first.csv`) && t.includes('exit code 1: recorder: told to fail'), 'a frame 150 wide');

    // The sqlite3 shell takes the write lock: the daemon turns degraded, top keeps reading
    // (WAL) and says so, and its clock keeps moving.
    const shell = await holdLock(s.db, 'begin-exclusive');
    const degraded = await term.waitForScreen((t) => /^mode\s+DEGRADED since .* ago: .*lock/im.test(t), 'degraded mode on the screen');
    // The worker's row cannot be written under the lock; its state file says degraded.
    expect(degraded).toMatch(new RegExp(`ago\\s+live\\s+degraded\\s+${d.child.pid}\\s+\\S+\\s+${workerId}`));
    capture('degraded', degraded);
    const clock = (t: string) => /(\d\d:\d\d:\d\d) UTC/.exec(t)?.[1];
    await term.waitForScreen((t) => clock(t) !== clock(degraded) && /^mode\s+DEGRADED/m.test(t), 'a refresh during the lock');
    await shell.release();
    await term.waitForScreen((t) => /^mode\s+normal$/m.test(t), 'normal mode after the release', 30_000);

    term.press('q');
    const after = await term.waitForScreen((t) => t.includes('top exited 0'), 'top quit');
    // The shell's screen is back as it was: the typed command, no trace of the view.
    // (A line of the view may remain above it here: tmux reflows the saved main screen when the
    // window is resized during the alternate screen. Without a resize nothing remains: the
    // next test.)
    expect(after).not.toContain('IN FLIGHT');
    expect(after).toContain(`${PROMPT}${process.execPath}`);
    expect(after.trimEnd().split('\n').at(-1)).toBe(PROMPT.trimEnd());
  });

  it('a database locked before it starts: says it cannot read, shows the ledger once the lock is gone; Ctrl-C quits', async () => {
    const ws = makeWorkspace();
    await seedStore(ws);
    const shell = await holdLock(ws.db, 'locking-mode-exclusive');
    const term = new Tmux(ws.dir, 100, 40);
    await term.typeLine(topLine(ws.config));
    const locked = await term.waitForScreen((t) => t.includes('CANNOT READ'), 'the lock on the screen');
    capture('locked', locked);
    expect(locked).toMatch(/^database\s+CANNOT READ since \S+ ago \(nothing read yet; trying again\)$/m);
    expect(locked).toMatch(/^why\s+locked by another process \(SQLITE_BUSY\)$/m);
    await shell.release();
    const shown = await term.waitForScreen((t) => t.includes('IN FLIGHT 1'), 'the ledger after the release');
    expect(shown).not.toContain('CANNOT READ');
    expect(shown).toMatch(new RegExp(`\\s1\\s+${WORKER}\\s+\\S*slow\\.csv$`, 'm'));
    term.press('C-c');
    const after = await term.waitForScreen((t) => t.includes('top exited 0'), 'top quit on Ctrl-C');
    // The shell's screen exactly as it was, the command's report under it.
    expect(after.trimEnd().split('\n').slice(-2)).toEqual(['top exited 0', PROMPT.trimEnd()]);
    expect(after.split('\n')[0]).toBe(`${PROMPT}${process.execPath} ${cliEntry().join(' ')} top --config ${ws.config}; echo "top exited $?"`.slice(0, 100));
    expect(after).not.toMatch(/ckpt top|^mode|IN FLIGHT|CANNOT READ/m);
  });
});
