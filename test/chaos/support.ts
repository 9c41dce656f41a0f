/**
 * Shared by test/chaos, test/hostile and test/security: the chaos handler, its records, a few
 * /proc readers, and whether the database fallback (issue 4) is wired into openStore yet.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, type Daemon, type Setup, daemonFrom } from '../helpers/daemon.js';
import type { OtherUser } from '../helpers/other-user.js';
import { REPO } from '../helpers/spawn.js';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';

export const CHAOS_HANDLER = path.join(REPO, 'test/fixtures/chaos/handler.mjs');

/** The argv of a command handler running the chaos handler on `{path}` (from `as`'s copy, if given). */
export function chaosCommand(as?: OtherUser): string[] {
  return as ? [as.node(), as.copyOf(CHAOS_HANDLER), '{path}'] : [process.execPath, CHAOS_HANDLER, '{path}'];
}

export interface ChaosRec {
  ev: 'start' | 'end' | 'ready' | 'sigterm';
  file: string;
  pid: number;
  ppid: number;
  parentComm: string;
  t: string;
  size: number;
  head: string;
  id: string;
  attempt?: string;
  key?: string;
  worker?: string;
  argc: number;
  outcome?: string;
  child?: number;
}

export function chaosRecords(recordLog: string): ChaosRec[] {
  if (!fs.existsSync(recordLog)) return [];
  return fs
    .readFileSync(recordLog, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ChaosRec);
}

/** Peak resident memory of a process (VmHWM), in bytes. */
export function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Bytes a process has read through read(2) and friends so far (/proc/PID/io rchar). */
export function bytesRead(pid: number): number {
  const m = /rchar:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z';
  } catch {
    return false;
  }
}

/** Every regular file below `dir`, recursively (no symlinks followed). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== LEDGER_MARKER) out.push(p); // the daemon's ownership record, not data
    }
  };
  walk(dir);
  return out;
}

/** Files below `dirs` whose second line is `id <id>`. */
export function whereIs(id: string, ...dirs: string[]): string[] {
  const found: string[] = [];
  for (const d of dirs) {
    for (const f of filesUnder(d)) {
      try {
        const fd = fs.openSync(f, 'r');
        const buf = Buffer.alloc(256);
        const n = fs.readSync(fd, buf, 0, 256, 0);
        fs.closeSync(fd);
        if (buf.subarray(0, n).toString('utf8').split('\n')[1] === `id ${id}`) found.push(f);
      } catch {
        // vanished meanwhile
      }
    }
  }
  return found;
}

/** Write `content` under `final` at once (dotfile in the same folder, then rename over). */
export function replaceAtomically(final: string, content: string | Buffer): void {
  const tmp = path.join(path.dirname(final), `.replace-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, final);
}

const mine = new Set<ChildProcess>();

/**
 * Like startDaemon() of test/helpers/daemon.ts, but with this module's own clean-up
 * (killMyDaemons()) and, with `as`, run as another user from that user's copy of ckpt.
 */
export function startDaemonWith(s: Setup, opts: { as?: OtherUser; env?: NodeJS.ProcessEnv; args?: string[] } = {}): Daemon {
  const ckpt = opts.as ? [...opts.as.prefix(), opts.as.node(), opts.as.copyOf(CLI)] : [process.execPath, CLI];
  const argv = [...ckpt, 'run', '--config', s.config, ...(opts.args ?? [])];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: s.dir,
    env: { ...process.env, RECORD_LOG: s.recordLog, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return daemonFrom(child, mine);
}

export function killMyDaemons(): void {
  for (const c of mine) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  mine.clear();
}
