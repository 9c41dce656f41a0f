import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAddon } from '../../src/native/addon.js';
import { ByteTail, buildArgv, type CommandHandlerConfig } from '../../src/run/command-handler.js';
import { createHandler as makeHandler, type Handler, type HandlerOutcome } from '../../src/run/handler.js';
import { makeContext } from '../fixtures/handlers/make-context.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const FIX = path.resolve(import.meta.dirname, '../fixtures/handlers');
const node = process.execPath;
const started: number[] = [];
/** This process's environment without CKPT_NATIVE (set to run this file with the native part off). */
const daemonEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'CKPT_NATIVE'));

/** Gone, or a zombie waiting for a parent that is not us: either way it runs no more. */
function isGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function readPid(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8'));
    return n > 0 ? n : null;
  } catch {
    return null;
  }
}

function failed(o: HandlerOutcome): Extract<HandlerOutcome, { ok: false }> {
  if (o.ok) throw new Error(`expected a failure, got ${JSON.stringify(o)}`);
  return o;
}

afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  cleanupTmpDirs();
});

// Every case with handlers started both ways: posix_spawn from the native part (the default
// when it is loaded) and the spawn helper (the fallback, as with CKPT_NATIVE=0).
describe.each(nativeAddon() !== null ? (['native', 'helper'] as const) : (['helper'] as const))('command handler (spawnVia %s)', (via) => {
  const createHandler = (cfg: CommandHandlerConfig, env?: NodeJS.ProcessEnv): Promise<Handler> => makeHandler({ ...cfg, spawnVia: via }, env);

  it('runs the program with {path}, the CKPT_* environment and cwd; exit 0 with a stats line is success', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'a.csv');
    fs.writeFileSync(file, 'x\n');
    const out = path.join(dir, 'out');
    const cwd = tmpDir();
    const handler = await createHandler({ command: [node, path.join(FIX, 'record-argv.mjs'), '{path}', out, '--in={path}', 'x{path}y{path}'], cwd }, { ...daemonEnv, FROM_DAEMON: 'yes' });
    const spawned: number[] = [];
    const ctx = makeContext(file, { onSpawn: (pid) => spawned.push(pid) });
    const o = await handler(ctx);
    expect(o).toMatchObject({ ok: true, stats: null });
    const report = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')) as { args: string[]; env: Record<string, string>; cwd: string; pid: number };
    expect(report.args).toEqual([file, out, `--in=${file}`, `x${file}y${file}`]);
    expect(report.env).toEqual({
      CKPT_FILE: file,
      CKPT_FILE_TYPE: 'csv',
      CKPT_VERSION: '1',
      CKPT_ATTEMPT: '1',
      CKPT_WORKER_ID: 'w-test',
      CKPT_IDEMPOTENCY_KEY: 'idem-123',
      CKPT_CLAIM_TOKEN: ctx.claimToken,
    });
    expect(fs.realpathSync(report.cwd)).toBe(fs.realpathSync(cwd));
    expect(spawned).toEqual([report.pid]);
    expect(o.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('the daemon environment is passed on', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'env');
    const handler = await createHandler(
      { command: [node, '-e', 'require("fs").writeFileSync(process.argv[1], process.env.FROM_DAEMON ?? "unset")', out] },
      { ...process.env, FROM_DAEMON: 'yes' },
    );
    expect((await handler(makeContext(path.join(dir, 'f')))).ok).toBe(true);
    expect(fs.readFileSync(out, 'utf8')).toBe('yes');
  });

  it('stats come from the last non-empty stdout line', async () => {
    const handler = await createHandler({ command: [node, path.join(FIX, 'print-exit.mjs'), '0', 'loading', '{"total":10,"filtered":3,"persisted":7}', ''] });
    expect(await handler(makeContext('/tmp/x.csv'))).toMatchObject({ ok: true, stats: { total: 10, filtered: 3, persisted: 7 } });
  });

  it('a malformed stats line is ignored and logged as a warning', async () => {
    const handler = await createHandler({ command: [node, path.join(FIX, 'print-exit.mjs'), '0', '{"total":10,"filtered":"3","persisted":7}'] });
    const ctx = makeContext('/tmp/x.csv');
    expect(await handler(ctx)).toMatchObject({ ok: true, stats: null });
    const warn = ctx.logLines().find((l) => l.level === 'warn');
    expect(warn?.msg).toMatch(/ignored stats line.*filtered/);
    expect(warn).toMatchObject({ path: '/tmp/x.csv', attempt: 1, workerId: 'w-test' });
  });

  it('a non-zero exit is a failure with the stderr tail; not permanent', async () => {
    const handler = await createHandler({ command: [node, path.join(FIX, 'print-exit.mjs'), '3', 'out', 'err:database unreachable'] });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o).toMatchObject({ ok: false, permanent: false, kind: 'exit' });
    expect(o.error).toMatch(/^exit code 3; stderr:\ndatabase unreachable/);
  });

  it('exit 65 (EX_DATAERR) is a permanent failure', async () => {
    const handler = await createHandler({ command: [node, path.join(FIX, 'print-exit.mjs'), '65', 'err:bad header'] });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o).toMatchObject({ permanent: true, kind: 'exit' });
    expect(o.error).toContain('bad header');
  });

  it('death by a signal is a failure of kind signal', async () => {
    const handler = await createHandler({ command: [node, '-e', 'process.kill(process.pid, "SIGKILL")'] });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o).toMatchObject({ permanent: false, kind: 'signal' });
    expect(o.error).toContain('SIGKILL');
  });

  it('a missing program is a spawn failure, not permanent', async () => {
    const handler = await createHandler({ command: ['ckpt-no-such-program-xyz', '{path}'] });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o).toMatchObject({ permanent: false, kind: 'spawn', error: 'handler program not found: ckpt-no-such-program-xyz' });
  });

  it('a program that is not executable is a spawn failure', async () => {
    const dir = tmpDir();
    const prog = path.join(dir, 'not-executable.sh');
    fs.writeFileSync(prog, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    const handler = await createHandler({ command: [prog] });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o.kind).toBe('spawn');
    expect(o.error).toContain('not executable');
  });

  it('a working folder that vanished after start is reported as such', async () => {
    const cwd = tmpDir();
    const handler = await createHandler({ command: [node, '-e', ''], cwd });
    fs.rmSync(cwd, { recursive: true });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o).toMatchObject({ kind: 'spawn', error: `handler working directory not found: ${cwd}` });
  });

  it('rejects a broken configuration when it is created', async () => {
    await expect(createHandler({ command: [] })).rejects.toThrow(/non-empty argv/);
    await expect(createHandler({ command: [''] })).rejects.toThrow(/program/);
    await expect(createHandler({ command: ['x', 'a\0b'] })).rejects.toThrow(/NUL/);
    await expect(createHandler({ command: ['x'], timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
    await expect(createHandler({ command: ['x'], cwd: '/nonexistent/ckpt' })).rejects.toThrow(/cwd/);
  });

  it('timeout: SIGTERM, then SIGKILL after the grace for a handler that ignores SIGTERM', async () => {
    const dir = tmpDir();
    const ready = path.join(dir, 'pid');
    const handler = await createHandler({ command: [path.join(FIX, 'stubborn.sh'), ready, 'ignore'], timeoutMs: 500, killGraceMs: 200 });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o).toMatchObject({ permanent: false, kind: 'timeout' });
    expect(o.error).toMatch(/timed out after 500 ms; SIGTERM, then SIGKILL after 200 ms/);
    expect(o.error).toContain('SIGKILL');
    const pid = readPid(ready);
    expect(pid).not.toBeNull();
    expect(isGone(pid ?? 0)).toBe(true);
  });

  it('timeout: a handler that exits 0 on SIGTERM still counts as timed out', async () => {
    const dir = tmpDir();
    const ready = path.join(dir, 'pid');
    const handler = await createHandler({ command: [path.join(FIX, 'stubborn.sh'), ready, 'exit0'], timeoutMs: 500, killGraceMs: 5000 });
    const o = failed(await handler(makeContext('/tmp/x.csv')));
    expect(o.kind).toBe('timeout');
    expect(o.error).toContain('exit code 0');
    expect(o.error).not.toContain('SIGKILL after');
  });

  it('ctx.signal aborting stops the handler (kind aborted)', async () => {
    const dir = tmpDir();
    const ready = path.join(dir, 'pid');
    const handler = await createHandler({ command: [path.join(FIX, 'stubborn.sh'), ready, 'ignore'], killGraceMs: 100 });
    const ac = new AbortController();
    const running = handler(makeContext('/tmp/x.csv', { signal: ac.signal }));
    const pid = await waitFor(() => readPid(ready));
    ac.abort(new Error('lease lost'));
    const o = failed(await running);
    expect(o).toMatchObject({ kind: 'aborted', permanent: false });
    expect(o.error).toMatch(/^aborted \(lease lost\)/);
    expect(isGone(pid)).toBe(true);
  });

  it('an already aborted signal: nothing is started', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'out');
    const handler = await createHandler({ command: [node, path.join(FIX, 'record-argv.mjs'), '{path}', out] });
    const ac = new AbortController();
    ac.abort('daemon stopping');
    const spawned: number[] = [];
    const o = failed(await handler(makeContext('/tmp/x.csv', { signal: ac.signal, onSpawn: (p) => spawned.push(p) })));
    expect(o.kind).toBe('aborted');
    expect(o.error).toContain('daemon stopping');
    expect(spawned).toEqual([]);
    expect(fs.existsSync(out)).toBe(false);
  });

  for (const mode of ['ignore', 'inherit'] as const) {
    it(`a background child left in the group is killed when the handler exits (stdio ${mode})`, async () => {
      const dir = tmpDir();
      const pidfile = path.join(dir, 'sleep.pid');
      const handler = await createHandler({ command: [node, path.join(FIX, 'fork-sleep.mjs'), pidfile, mode] });
      const ctx = makeContext('/tmp/x.csv');
      const o = await handler(ctx);
      const sleepPid = readPid(pidfile);
      expect(sleepPid).not.toBeNull();
      if (sleepPid !== null) started.push(sleepPid);
      expect(o).toMatchObject({ ok: true, stats: { total: 1, filtered: 0, persisted: 1 } });
      await waitFor(() => isGone(sleepPid ?? 0), { message: 'the background sleep is still running' });
      expect(ctx.logLines().some((l) => String(l.msg).includes('killed processes left in the handler process group'))).toBe(true);
    });
  }

  it('megabytes of output: only a bounded tail is kept; the stats line is still found', async () => {
    const handler = await createHandler({ command: [node, path.join(FIX, 'flood.mjs'), '16', '0'] });
    expect(await handler(makeContext('/tmp/x.csv'))).toMatchObject({ ok: true, stats: { total: 7, filtered: 2, persisted: 5 } });

    const failing = await createHandler({ command: [node, path.join(FIX, 'flood.mjs'), '16', '2'] });
    const o = failed(await failing(makeContext('/tmp/x.csv')));
    expect(o.error).toMatch(/^exit code 2; stderr \(last 4096 of 16777232 bytes\):\n/);
    expect(o.error.endsWith('LAST-ERROR-LINE\n')).toBe(true);
    expect(Buffer.byteLength(o.error)).toBeLessThan(4096 + 100);
  });
});

describe('ByteTail', () => {
  it('keeps exactly the last `limit` bytes of whatever was pushed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(fc.uint8Array({ maxLength: 100 })), (limit, chunks) => {
        const tail = new ByteTail(limit);
        for (const c of chunks) tail.push(Buffer.from(c));
        const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
        expect(tail.size).toBe(Math.min(limit, all.length));
        expect(tail.seen).toBe(all.length);
        expect(tail.truncated).toBe(all.length > limit);
        expect(tail.bytes().equals(all.subarray(all.length - tail.size))).toBe(true);
      }),
    );
  });

  it('does not start with half a character after truncation', () => {
    const tail = new ByteTail(5);
    tail.push(Buffer.from('ééé')); // 6 bytes; the last 5 start inside the first é
    expect(tail.text()).toBe('éé');
  });
});

describe('buildArgv', () => {
  it('replaces every {path} literally, even with $& or $\' in the name', () => {
    expect(buildArgv(['prog', '{path}', 'a={path},b={path}', 'none'], "/d/x$&y$'z$`.csv")).toEqual([
      'prog',
      "/d/x$&y$'z$`.csv",
      "a=/d/x$&y$'z$`.csv,b=/d/x$&y$'z$`.csv",
      'none',
    ]);
    expect(buildArgv(['{path}'], '/d/{path}.csv')).toEqual(['/d/{path}.csv']);
  });
});
