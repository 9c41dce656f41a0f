/**
 * The spawn helper (src/run/spawn-helper.ts): command handlers are started by one long-lived
 * helper process, not by the daemon's own thread; and when the helper dies, runs in flight end
 * as failures with their process groups killed, and the next run gets a new helper.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAddon } from '../../src/native/addon.js';
import { parseProcStat } from '../../src/run/orphans.js';
import { createHandler } from '../../src/run/handler.js';
import { makeContext } from '../fixtures/handlers/make-context.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const killed: number[] = [];
/** Off with CKPT_NATIVE=0 (test/unit/native-addon.test.ts checks it is built otherwise). */
const NATIVE = nativeAddon() !== null;

afterEach(() => {
  for (const pid of killed.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  cleanupTmpDirs();
});

function readNumber(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return n > 0 ? n : null;
  } catch {
    return null;
  }
}

function isGone(pid: number): boolean {
  try {
    const st = parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return st === null || st.state === 'Z';
  } catch {
    return true;
  }
}

/** argv of a handler that writes its parent's pid to `<dir>/<name>.ppid` and its own to `.pid`. */
function recorder(dir: string, name: string, then = 'exit 0'): string[] {
  const base = path.join(dir, name);
  return ['sh', '-c', `echo $PPID > "$0.ppid"; echo $$ > "$0.pid"; ${then}`, base];
}

describe('spawn helper', () => {
  it('starts every handler from one helper process whose parent is this process', async () => {
    const dir = tmpDir();
    const a = await createHandler({ command: recorder(dir, 'a'), spawnVia: 'helper' });
    expect(await a(makeContext('/tmp/a.csv'))).toMatchObject({ ok: true });
    expect(await a(makeContext('/tmp/b.csv'))).toMatchObject({ ok: true });
    const helper = readNumber(path.join(dir, 'a.ppid'));
    expect(helper).not.toBeNull();
    expect(helper).not.toBe(process.pid);
    expect(parseProcStat(fs.readFileSync(`/proc/${String(helper)}/stat`, 'utf8'))?.ppid).toBe(process.pid);
  });

  it.skipIf(!NATIVE)("spawnVia 'native' (the default with the native part): posix_spawn from this process, the handler leading its own group", async () => {
    const dir = tmpDir();
    const h = await createHandler({ command: recorder(dir, 'n', 'cat /proc/$$/stat > "$0.stat"') });
    expect(await h(makeContext('/tmp/n.csv'))).toMatchObject({ ok: true });
    expect(readNumber(path.join(dir, 'n.ppid'))).toBe(process.pid);
    const stat = parseProcStat(fs.readFileSync(path.join(dir, 'n.stat'), 'utf8'));
    expect(stat?.pgrp).toBe(readNumber(path.join(dir, 'n.pid')));
  });

  it.skipIf(!NATIVE)("posix_spawn's children and Node's own, at once: each exit status reaches its own run (nobody reaps the other's)", async () => {
    const dir = tmpDir();
    const native = await createHandler({ command: recorder(dir, 'x', 'sleep 0.3; exit 3'), spawnVia: 'native' });
    const direct = await createHandler({ command: recorder(dir, 'y', 'sleep 0.3; exit 4'), spawnVia: 'direct' });
    const outcomes = await Promise.all([native(makeContext('/tmp/x.csv')), direct(makeContext('/tmp/y.csv')), native(makeContext('/tmp/z.csv'))]);
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.error))).toEqual(['exit code 3', 'exit code 4', 'exit code 3']);
  });

  it("spawnVia 'direct' starts the handler from this process", async () => {
    const dir = tmpDir();
    const h = await createHandler({ command: recorder(dir, 'd'), spawnVia: 'direct' });
    expect(await h(makeContext('/tmp/d.csv'))).toMatchObject({ ok: true });
    expect(readNumber(path.join(dir, 'd.ppid'))).toBe(process.pid);
  });

  it('a helper that dies mid-run: the run fails, its process group is killed, the next run gets a new helper', async () => {
    const dir = tmpDir();
    const h = await createHandler({ command: recorder(dir, 'long', 'exec sleep 30'), spawnVia: 'helper' });
    // Killed only once the helper has said it spawned the handler (onSpawn): before that the run
    // fails as kind 'spawn' instead, which the full suite's load made happen once.
    let spawned = 0;
    const run = h(makeContext('/tmp/long.csv', { onSpawn: (pid) => (spawned = pid) }));
    const helper = await waitFor(() => readNumber(path.join(dir, 'long.ppid')));
    const sleeper = await waitFor(() => readNumber(path.join(dir, 'long.pid')));
    await waitFor(() => spawned !== 0);
    killed.push(sleeper);
    process.kill(helper, 'SIGKILL');
    const o = await run;
    expect(o).toMatchObject({ ok: false, kind: 'signal' });
    expect(o.ok ? '' : o.error).toContain('spawn helper process exited');
    await waitFor(() => isGone(sleeper), { message: 'the handler outlived its helper' });

    fs.rmSync(path.join(dir, 'long.ppid'));
    fs.rmSync(path.join(dir, 'long.pid'));
    const again = await createHandler({ command: recorder(dir, 'next'), spawnVia: 'helper' });
    expect(await again(makeContext('/tmp/next.csv'))).toMatchObject({ ok: true });
    // The old handler starts its next run through a new helper (stopped once it has started).
    const ac = new AbortController();
    const run2 = h(makeContext('/tmp/long2.csv', { signal: ac.signal }));
    const second = await waitFor(() => readNumber(path.join(dir, 'long.ppid')));
    const sleeper2 = await waitFor(() => readNumber(path.join(dir, 'long.pid')));
    killed.push(sleeper2);
    ac.abort();
    expect(await run2).toMatchObject({ ok: false, kind: 'aborted' });
    expect(second).not.toBe(helper);
  });
  it.each(NATIVE ? (['helper', 'direct', 'native'] as const) : (['helper', 'direct'] as const))('spawnVia %s: a run whose lease ran out before the fork is not started', async (via) => {
    const dir = tmpDir();
    const h = await createHandler({ command: recorder(dir, 'late'), spawnVia: via });
    const o = await h(makeContext('/tmp/late.csv', { startBy: Date.now() - 1 }));
    expect(o).toMatchObject({ ok: false, kind: 'spawn', permanent: false });
    expect(o.ok ? '' : o.error).toContain('lease ran out');
    expect(fs.existsSync(path.join(dir, 'late.pid'))).toBe(false);
    // With time left it runs.
    expect(await h(makeContext('/tmp/late.csv', { startBy: Date.now() + 60_000 }))).toMatchObject({ ok: true });
    expect(fs.existsSync(path.join(dir, 'late.pid'))).toBe(true);
  });
});
