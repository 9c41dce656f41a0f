import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killOrphanedHandler, parseProcStat } from '../../src/run/orphans.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const FIX = path.resolve(import.meta.dirname, '../fixtures/handlers');
const children: ChildProcess[] = [];
const extraPids: number[] = [];

function isGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Starts orphan-group.mjs like a command handler: its own group, a claim token in its env. */
async function startOrphan(token: string, comm?: string): Promise<{ pgid: number; sleepPid: number; child: ChildProcess }> {
  const pidfile = path.join(tmpDir(), 'pids');
  const child = spawn(process.execPath, [path.join(FIX, 'orphan-group.mjs'), pidfile, ...(comm ? [comm] : [])], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, CKPT_CLAIM_TOKEN: token },
  });
  children.push(child);
  const text = await waitFor(() => {
    const t = fs.existsSync(pidfile) ? fs.readFileSync(pidfile, 'utf8') : '';
    return t.includes(' ') ? t : null;
  });
  const [pid, sleepPid] = text.split(' ').map(Number);
  extraPids.push(sleepPid ?? 0);
  expect(pid).toBe(child.pid);
  return { pgid: pid ?? 0, sleepPid: sleepPid ?? 0, child };
}

afterEach(() => {
  for (const c of children.splice(0)) {
    if (c.pid !== undefined) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const pid of extraPids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  cleanupTmpDirs();
});

describe('killOrphanedHandler', () => {
  it('kills every process of the group that carries the claim token, and waits until they are gone', async () => {
    const { pgid, sleepPid } = await startOrphan('tok-A');
    // The sleep inherited the environment: both carry the token.
    expect(fs.readFileSync(`/proc/${sleepPid}/environ`).includes('CKPT_CLAIM_TOKEN=tok-A\0')).toBe(true);
    const r = killOrphanedHandler(pgid, 'tok-A');
    expect(r).toEqual({ killed: 2, remaining: 0 });
    // Synchronously gone (or zombies, which run no more) when it returns.
    expect(isGone(pgid)).toBe(true);
    expect(isGone(sleepPid)).toBe(true);
  });

  it('without a recorded group (the worker died right after the spawn), finds the processes by token alone', async () => {
    const { pgid, sleepPid } = await startOrphan('tok-nogroup');
    const other = await startOrphan('tok-else');
    expect(killOrphanedHandler(null, 'tok-nogroup')).toEqual({ killed: 2, remaining: 0 });
    expect(isGone(pgid)).toBe(true);
    expect(isGone(sleepPid)).toBe(true);
    expect(isGone(other.pgid)).toBe(false);
  });

  it('leaves a process of the same group alone when its token differs (pid reuse guard)', async () => {
    const { pgid, sleepPid } = await startOrphan('tok-OTHER');
    expect(killOrphanedHandler(pgid, 'tok-A')).toEqual({ killed: 0, remaining: 0 });
    // A token that is a prefix of the real one must not match either.
    expect(killOrphanedHandler(pgid, 'tok-OTH')).toEqual({ killed: 0, remaining: 0 });
    expect(isGone(pgid)).toBe(false);
    expect(isGone(sleepPid)).toBe(false);
  });

  it('finds processes whose name has spaces and parentheses', async () => {
    const { pgid } = await startOrphan('tok-B', 'x) 1 2 (y');
    expect(fs.readFileSync(`/proc/${pgid}/comm`, 'utf8').trim()).toBe('x) 1 2 (y');
    expect(killOrphanedHandler(pgid, 'tok-B').killed).toBe(2);
    expect(isGone(pgid)).toBe(true);
  });

  it('an empty group, a bad pgid or an empty token: nothing happens', () => {
    expect(killOrphanedHandler(999_999_999, 'tok')).toEqual({ killed: 0, remaining: 0 });
    expect(killOrphanedHandler(1, 'tok')).toEqual({ killed: 0, remaining: 0 });
    expect(killOrphanedHandler(0, 'tok')).toEqual({ killed: 0, remaining: 0 });
    expect(killOrphanedHandler(-5, 'tok')).toEqual({ killed: 0, remaining: 0 });
    expect(killOrphanedHandler(process.pid, '')).toEqual({ killed: 0, remaining: 0 });
  });
});

describe('parseProcStat', () => {
  it('reads the fields after the LAST parenthesis', () => {
    expect(parseProcStat('1234 (x) 1 2 (y) S 1 1234 1234 0 -1 4194560 ...')).toEqual({ pid: 1234, comm: 'x) 1 2 (y', state: 'S', ppid: 1, pgrp: 1234 });
    expect(parseProcStat('7 (a b) Z 3 9 9')).toEqual({ pid: 7, comm: 'a b', state: 'Z', ppid: 3, pgrp: 9 });
    expect(parseProcStat('7 ()) R 3 9 9')).toMatchObject({ comm: ')', pgrp: 9 });
  });

  it('this process', () => {
    const me = parseProcStat(fs.readFileSync('/proc/self/stat', 'latin1'));
    expect(me?.pid).toBe(process.pid);
    expect(me?.ppid).toBe(process.ppid);
  });

  it('garbage gives null', () => {
    for (const s of ['', 'nonsense', '12 (x', '12 (x) S', '(x) S 1 2', 'a (x) S 1 2']) expect(parseProcStat(s), s).toBeNull();
  });
});
