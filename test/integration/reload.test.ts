/**
 * SIGHUP: a real `ckpt run` re-reads its config file and swaps what can change live, refuses a
 * config that does not validate, and names what needs a restart. Real folders, the recorder
 * handler, the built CLI.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, cli, countStatus, type Daemon, drop, killDaemons, records, rows, setup, type Setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { REPO, run } from '../helpers/spawn.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

type Line = Record<string, unknown>;

const hasScript = spawnSync('script', ['--version']).status === 0;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** warn, error or fatal: the levels an operator is alerted by. */
const atLeastWarn = (l: Line) => ['warn', 'error', 'fatal'].includes(String(l.level));

const isReloadLine = (l: Line) => typeof l.msg === 'string' && (l.msg.startsWith('configuration reloaded') || l.msg.startsWith('reload refused'));

/** Rewrites keys of the config file (a shallow merge, as an operator's edit would be). */
function editConfig(s: Setup, patch: Record<string, unknown>): void {
  const cfg = JSON.parse(fs.readFileSync(s.config, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(s.config, JSON.stringify({ ...cfg, ...patch }, null, 2));
}

/**
 * Sends SIGHUP and returns the reload's line (applied or refused) and the lines logged from the
 * signal up to it and just after. Fails at once if the daemon exits instead.
 */
async function hangup(d: Daemon): Promise<{ line: Line; after: Line[] }> {
  const from = d.lines.length;
  d.child.kill('SIGHUP');
  const exited = d.exited.then(({ code, signal }) => {
    throw new Error(`the daemon exited on SIGHUP (code ${code}, signal ${signal}); stderr: ${d.stderr()}`);
  });
  const line = await Promise.race([waitFor(() => d.lines.slice(from).find(isReloadLine), { message: 'a reload line' }), exited]);
  return { line, after: d.lines.slice(from) };
}

async function stop(d: Daemon): Promise<number | null> {
  d.child.kill('SIGTERM');
  return (await d.exited).code;
}

describe('SIGHUP', () => {
  it('keeps the daemon running and its worker row live, and it keeps handling files', async () => {
    const s = setup();
    const d = startDaemon(s);
    await started(d);
    const { line } = await hangup(d);
    expect(line).toMatchObject({ level: 'info', changed: [], msg: 'configuration reloaded (nothing changed)' });
    const st = await cli(['status', '--json', '--config', s.config], { cwd: s.dir });
    expect(st.code, st.stderr).toBe(0);
    const workers = (JSON.parse(st.stdout) as { workers: { pid: number; state: string }[] }).workers;
    expect(workers).toEqual([expect.objectContaining({ pid: d.child.pid, state: 'live' })]);
    const f = drop(s.inbox, 'after-hup.csv', 'a\n');
    await waitFor(() => statusOf(s.db, f) === 'completed');
    expect(await stop(d)).toBe(0);
  });

  it('a SIGHUP while the daemon is still starting is kept and applied once it runs', async () => {
    const s = setup({ handler: { command: ['/bin/true', '{path}'] } });
    // A start-up scan with something to do, so that the signal lands before "ckpt running".
    for (let i = 0; i < 500; i++) fs.writeFileSync(path.join(s.inbox, `f${i}.csv`), 'a\n');
    const d = startDaemon(s);
    await d.waitForLog((l) => l.msg === 'watching folder');
    const { line } = await hangup(d);
    expect(line).toMatchObject({ msg: 'configuration reloaded (nothing changed)' });
    const running = d.lines.findIndex((l) => l.msg === 'ckpt running');
    expect(running).toBeGreaterThanOrEqual(0);
    expect(running).toBeLessThan(d.lines.indexOf(line));
    expect(await stop(d)).toBe(0);
  });

  it('a new handler runs new files; a file already running finishes under the old one', async () => {
    const s = setup({ concurrency: 2 });
    const d = startDaemon(s);
    await started(d);
    const slow = drop(s.inbox, 'slow.csv', 'sleep 4000\n');
    await waitFor(() => records(s).some((r) => r.ev === 'start' && r.file === slow));
    // The new handler appends the path it got to v2.log (it runs in the config file's folder).
    editConfig(s, { handler: { command: ['/bin/sh', '-c', 'printf "%s\\n" "$1" >> v2.log', 'sh', '{path}'] } });
    const { line } = await hangup(d);
    expect(line).toMatchObject({ changed: ['handler'] });
    expect(records(s).some((r) => r.ev === 'end' && r.file === slow), 'the slow run was still going at the reload').toBe(false);
    const fresh = drop(s.inbox, 'fresh.csv', 'b\n');
    await waitFor(() => statusOf(s.db, fresh) === 'completed' && statusOf(s.db, slow) === 'completed', { timeoutMs: 30_000 });
    const v2 = fs.readFileSync(path.join(s.dir, 'v2.log'), 'utf8').split('\n').filter(Boolean);
    expect(v2).toEqual([fresh]);
    const old = records(s);
    expect(old.filter((r) => r.file === fresh)).toEqual([]);
    expect(old.filter((r) => r.file === slow && r.ev !== 'tick').map((r) => [r.ev, r.outcome])).toEqual([['start', undefined], ['end', 'ok']]);
    expect(await stop(d)).toBe(0);
  });

  it('a new onSuccess applies to new claims; a file running at the reload settles under the old one', async () => {
    const s = setup();
    const done = path.join(s.dir, 'done');
    fs.mkdirSync(done);
    const d = startDaemon(s);
    await started(d);
    const slow = drop(s.inbox, 'slow.csv', 'sleep 3000\n');
    await waitFor(() => records(s).some((r) => r.ev === 'start' && r.file === slow));
    editConfig(s, { onSuccess: { moveTo: 'done' } });
    expect((await hangup(d)).line).toMatchObject({ changed: ['onSuccess'] });
    const fresh = drop(s.inbox, 'fresh.csv', 'a\n');
    // The outcome line comes after the after-action (the row is committed before it).
    const outcome = (file: string) => d.waitForLog((l) => l.msg === 'completed' && l.path === file, 30_000);
    expect(await outcome(fresh)).toMatchObject({ afterAction: `moved to ${path.join(done, 'fresh.csv')}` });
    expect(await outcome(slow)).toMatchObject({ afterAction: 'keep' });
    expect(fs.existsSync(slow), 'claimed under onSuccess keep: stays').toBe(true);
    expect(fs.existsSync(path.join(done, 'slow.csv'))).toBe(false);
    expect(await stop(d)).toBe(0);
  });

  it('a larger concurrency takes effect without a restart', async () => {
    const s = setup({ concurrency: 1 });
    const d = startDaemon(s);
    await started(d);
    editConfig(s, { concurrency: 3 });
    expect((await hangup(d)).line).toMatchObject({ changed: ['concurrency'] });
    const files = ['c1', 'c2', 'c3'].map((n) => drop(s.inbox, `${n}.csv`, 'sleep 3000\n'));
    // Three handlers running at once: all three started, none ended (one at a time under concurrency 1).
    await waitFor(() => {
      const recs = records(s);
      return files.every((f) => recs.some((r) => r.ev === 'start' && r.file === f)) && !recs.some((r) => r.ev === 'end');
    }, { timeoutMs: 15_000, message: 'three handlers running at once' });
    await waitFor(() => countStatus(s.db, 'completed') === 3, { timeoutMs: 30_000 });
    expect(await stop(d)).toBe(0);
  });

  it("a route's new cap applies without a restart; a cap above the total is refused naming the key", async () => {
    const gate = path.join(REPO, 'test/fixtures/daemon/gate.mjs');
    const s = setup({ concurrency: 3 });
    const gateFile = path.join(s.dir, 'gate');
    const route = (concurrency: number) => [{ dir: 'inbox', concurrency, handler: { command: [process.execPath, gate, gateFile, '{path}'] } }];
    editConfig(s, { watch: route(1) });
    const d = startDaemon(s);
    await started(d);
    const files = ['r1', 'r2', 'r3'].map((n) => drop(s.inbox, `${n}.csv`, 'x\n'));
    const gateStarts = () => records(s).filter((r) => r.ev === 'start').length;
    await waitFor(() => gateStarts() === 1, { message: 'one run under the cap of 1' });

    editConfig(s, { watch: route(4) });
    const refused = (await hangup(d)).line;
    expect(refused).toMatchObject({ level: 'error', key: 'watch[0].concurrency' });
    expect(String(refused.msg)).toMatch(/reload refused, the running configuration stays: .*watch\[0\]\.concurrency: expected at most the top-level concurrency \(3/);

    editConfig(s, { watch: route(3) });
    expect((await hangup(d)).line).toMatchObject({ changed: ['watch'] });
    // All three run at once while the gate is still closed: the route's cap is 3 now.
    await waitFor(() => gateStarts() === 3, { timeoutMs: 15_000, message: 'three runs under the new cap' });
    expect(records(s).some((r) => r.ev === 'end')).toBe(false);
    fs.writeFileSync(gateFile, '');
    await waitFor(() => files.every((f) => statusOf(s.db, f) === 'completed'), { timeoutMs: 30_000 });
    expect(await stop(d)).toBe(0);
  });

  it('a new retry policy applies to the next failure', async () => {
    const s = setup({ retry: { maxRetries: 3, baseDelayMs: 50, maxDelayMs: 200 } });
    const d = startDaemon(s);
    await started(d);
    editConfig(s, { retry: { maxRetries: 0, baseDelayMs: 50, maxDelayMs: 200 } });
    expect((await hangup(d)).line).toMatchObject({ changed: ['retry'] });
    const f = drop(s.inbox, 'fails.csv', 'fail\n');
    await waitFor(() => statusOf(s.db, f) === 'dead');
    expect(records(s).filter((r) => r.file === f && r.ev === 'start')).toHaveLength(1);
    expect(await stop(d)).toBe(0);
  });

  it('a longer lease applies to the claims held at the reload without letting theirs run out', async () => {
    const s = setup({ leaseMs: 3_000 });
    const d = startDaemon(s);
    await started(d);
    const slow = drop(s.inbox, 'slow.csv', 'sleep 5000\n');
    await waitFor(() => records(s).some((r) => r.ev === 'start' && r.file === slow));
    editConfig(s, { leaseMs: 30_000 });
    expect((await hangup(d)).line).toMatchObject({ changed: ['leaseMs'] });
    // The next renewal comes on the old schedule (within a second) and extends by the new lease.
    const leaseLeftMs = () => {
      const r = rows(s.db, `SELECT due_at FROM file_checkpoints WHERE status = 'processing'`)[0];
      return r ? Date.parse(String(r.due_at)) - Date.now() : 0;
    };
    await waitFor(() => leaseLeftMs() > 10_000, { message: 'a lease renewed to the new length' });
    expect(await d.waitForLog((l) => l.msg === 'completed' && l.path === slow, 30_000)).toMatchObject({ attempt: 1 });
    // No "lease renewal late", no "lease lost", no takeover.
    expect(d.lines.filter((l) => atLeastWarn(l) && /lease|took over/.test(String(l.msg)))).toEqual([]);
    expect(await stop(d)).toBe(0);
  });

  it('an added folder is scanned and watched; a removed one is no longer watched', async () => {
    const s = setup();
    const second = path.join(s.dir, 'second');
    fs.mkdirSync(second);
    const waiting = drop(second, 'waiting.csv', 'a\n');
    const d = startDaemon(s);
    await started(d);
    const before = drop(s.inbox, 'before.csv', 'b\n');
    await waitFor(() => statusOf(s.db, before) === 'completed');
    expect(statusOf(s.db, waiting)).toBeUndefined();

    editConfig(s, { watch: [{ dir: 'second' }] });
    expect((await hangup(d)).line).toMatchObject({ changed: ['watch'] });
    await waitFor(() => statusOf(s.db, waiting) === 'completed');

    const ignored = drop(s.inbox, 'ignored.csv', 'c\n');
    const seen = drop(second, 'seen.csv', 'd\n');
    await waitFor(() => statusOf(s.db, seen) === 'completed');
    // A periodic rescan (rescanMs 2 s) that began after both drops would have found the inbox
    // file too, had the inbox still been watched.
    const from = d.lines.length;
    await d.waitForLog((l) => d.lines.indexOf(l) >= from && l.msg === 'folder scan finished' && l.reason === 'periodic');
    expect(d.lines.slice(from).some((l) => l.msg === 'folder scan finished' && l.folder === s.inbox)).toBe(false);
    expect(statusOf(s.db, ignored)).toBeUndefined();
    expect(await stop(d)).toBe(0);
  });

  it('a config that does not validate is refused with one line naming the key, and the old one keeps running', async () => {
    const s = setup();
    const d = startDaemon(s);
    await started(d);
    editConfig(s, { concurrency: 'four' });
    const from = d.lines.length;
    const { line } = await hangup(d);
    // The same words as a start with that file.
    const atStart = await run(process.execPath, [CLI, 'run', '--once', '--config', s.config], { cwd: s.dir });
    expect(atStart.code).toBe(78);
    expect(line).toMatchObject({ level: 'error', key: 'concurrency', msg: `reload refused, the running configuration stays: ${atStart.stderr.trim()}` });
    expect(atStart.stderr).toContain('concurrency');
    const f = drop(s.inbox, 'still.csv', 'a\n');
    await waitFor(() => statusOf(s.db, f) === 'completed');
    const problems = d.lines.slice(from).filter((l) => atLeastWarn(l));
    expect(problems).toEqual([line]);
    expect(await stop(d)).toBe(0);
  });

  it('a handler module that does not load is refused the same way', async () => {
    const s = setup();
    const d = startDaemon(s);
    await started(d);
    editConfig(s, { handler: { module: path.join(REPO, 'test/fixtures/handlers/module-syntax-error.mjs') } });
    const { line } = await hangup(d);
    expect(line).toMatchObject({ level: 'error', key: 'handler' });
    expect(line.msg).toMatch(/^reload refused, the running configuration stays: .*ckpt\.config\.json: handler: handler module .*module-syntax-error\.mjs failed to load: /);
    const f = drop(s.inbox, 'still.csv', 'a\n');
    await waitFor(() => statusOf(s.db, f) === 'completed');
    expect(records(s).filter((r) => r.file === f && r.ev === 'end')).toHaveLength(1);
    expect(await stop(d)).toBe(0);
  });

  it('a handler program that cannot be run is refused with the line a start would print', async () => {
    const s = setup();
    const d = startDaemon(s);
    await started(d);
    editConfig(s, { handler: { command: ['no-such-loader-program', '{path}'] } });
    const { line } = await hangup(d);
    const atStart = await run(process.execPath, [CLI, 'run', '--once', '--config', s.config], { cwd: s.dir });
    expect(atStart.code).toBe(78);
    expect(line).toMatchObject({ level: 'error', key: 'handler.command[0]' });
    expect(line.msg).toMatch(/^reload refused, the running configuration stays: .*handler\.command\[0\]: cannot run "no-such-loader-program"/);
    // The old handler still runs new files.
    const f = drop(s.inbox, 'still.csv', 'a\n');
    await waitFor(() => statusOf(s.db, f) === 'completed');
    expect(records(s).filter((r) => r.file === f && r.ev === 'end')).toHaveLength(1);
    expect(await stop(d)).toBe(0);
  });

  it("a folder added by a reload that belongs to another ledger is refused, as at start", async () => {
    const other = setup();
    // Another ledger takes the folder first.
    const o = startDaemon(other);
    await started(o);
    expect(await stop(o)).toBe(0);
    const s = setup();
    const d = startDaemon(s);
    await started(d);
    editConfig(s, { watch: [{ dir: 'inbox' }, { dir: other.inbox }] });
    const { line } = await hangup(d);
    expect(line).toMatchObject({ level: 'error', key: 'watch' });
    expect(line.msg).toMatch(/^reload refused, the running configuration stays: /);
    expect(line.msg).toContain(other.inbox);
    // Nothing of the other ledger's folder is handled here; the old folders still are.
    const theirs = drop(other.inbox, 'theirs.csv', 'a\n');
    const f = drop(s.inbox, 'still.csv', 'a\n');
    await waitFor(() => statusOf(s.db, f) === 'completed');
    expect(statusOf(s.db, theirs)).toBeUndefined();
    expect(await stop(d)).toBe(0);
  });

  it('a changed database is named as needing a restart, and the running one stays in use', async () => {
    const s = setup();
    const d = startDaemon(s);
    await started(d);
    editConfig(s, { database: 'other.db', log: { level: 'warn', format: 'json' } });
    const { line, after } = await hangup(d);
    expect(line).toMatchObject({ level: 'info', changed: ['log.level'] });
    const warn = after.filter((l) => l.level === 'warn');
    expect(warn).toEqual([expect.objectContaining({ keys: ['database'], msg: 'not applied until a restart: database' })]);
    const f = drop(s.inbox, 'same-db.csv', 'a\n');
    await waitFor(() => statusOf(s.db, f) === 'completed');
    expect(fs.existsSync(path.join(s.dir, 'other.db'))).toBe(false);
    // log.level went from debug to warn: the reload's own line still says so, nothing below warn follows.
    expect(d.lines.slice(d.lines.indexOf(line) + 1).filter((l) => !atLeastWarn(l))).toEqual([]);
    expect(await stop(d)).toBe(0);
  });

  it('flags and environment given at start still override the re-read file', async () => {
    const s = setup({ concurrency: 1 });
    const d = startDaemon(s, ['--concurrency', '2'], { CKPT_LOG_LEVEL: 'debug' });
    await started(d);
    editConfig(s, { concurrency: 5, log: { level: 'warn', format: 'json' } });
    // concurrency and log.level come from the flag and the variable: nothing changed.
    expect((await hangup(d)).line).toMatchObject({ changed: [], msg: 'configuration reloaded (nothing changed)' });
    expect(await stop(d)).toBe(0);
  });

  it('a closed terminal (SIGHUP, then EIO on the next log line) stops the daemon cleanly: its worker row is removed', async (ctx) => {
    if (!hasScript) {
      console.warn('skipped: util-linux `script` is not installed, so no terminal can be closed under ckpt here');
      ctx.skip('no `script` to give ckpt a terminal');
    }
    const s = setup({ log: { level: 'info', format: 'pretty' } });
    // `script` runs ckpt on a pseudo-terminal; SIGKILLing script closes it, and the kernel sends
    // SIGHUP to ckpt (the session leader), as when a terminal window is closed.
    const term = spawn('script', ['-qfc', `exec ${process.execPath} ${CLI} run --config ${s.config}`, '/dev/null'], { cwd: s.dir, stdio: 'ignore' });
    let pid: number | undefined;
    try {
      pid = await waitFor(() => rows(s.db, 'SELECT pid FROM ckpt_workers')[0]?.pid as number | undefined, { message: 'the worker row' });
      term.kill('SIGKILL');
      await waitFor(() => !alive(pid!), { message: 'ckpt gone after its terminal closed' });
      expect(rows(s.db, 'SELECT * FROM ckpt_workers')).toEqual([]);
    } finally {
      term.kill('SIGKILL');
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('run --once reloads too, and still ends when every file is settled', async () => {
    const s = setup();
    const slow = drop(s.inbox, 'slow.csv', 'sleep 2000\n');
    const d = startDaemon(s, ['--once']);
    await waitFor(() => records(s).some((r) => r.ev === 'start' && r.file === slow));
    editConfig(s, { concurrency: 3 });
    expect((await hangup(d)).line).toMatchObject({ changed: ['concurrency'] });
    expect((await d.exited).code).toBe(0);
    expect(statusOf(s.db, slow)).toBe('completed');
  });
});

