import fs from 'node:fs';
import os from 'node:os';
import { pidExists } from '../../pid-exists.js';

/**
 * Who owns a claim marker or a journal: enough to tell later whether that process still lives.
 * A pid alone is not enough, since pids are reused: the start time from /proc/<pid>/stat
 * (clock ticks since boot, field 22) tells a reused pid from the original owner.
 */
export interface ProcessIdentity {
  pid: number;
  host: string;
  /** Field 22 of /proc/<pid>/stat, or null where /proc is missing. */
  startTicks: string | null;
}

export function processStartTicks(pid: number): string | null {
  return procStat(pid)?.startTicks ?? null;
}

function procStat(pid: number): { state: string; startTicks: string | null } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 is rest[19].
    return { state: rest[0] ?? '?', startTicks: rest[19] ?? null };
  } catch {
    return null;
  }
}

let self: ProcessIdentity | undefined;

export function selfIdentity(): ProcessIdentity {
  self ??= { pid: process.pid, host: os.hostname(), startTicks: processStartTicks(process.pid) };
  return self;
}

/**
 * Whether the process is still running. On another host we cannot know: answer true, and let
 * the caller rely on the lease instead. (The database and the folder beside it live on a local
 * file system, so in practice every owner is on this host.)
 */
export function isAlive(id: ProcessIdentity): boolean {
  if (id.host !== os.hostname()) return true;
  if (id.pid === process.pid) return id.startTicks === selfIdentity().startTicks;
  if (!pidExists(id.pid)) return false;
  const st = procStat(id.pid);
  // Unreadable /proc: it exists (kill said so), count it as alive.
  if (st === null) return true;
  // A zombie has exited; only its parent has not collected it yet (a SIGKILLed child of a test).
  if (st.state === 'Z' || st.state === 'X') return false;
  return id.startTicks === null || st.startTicks === id.startTicks;
}

let bootMs: number | null | undefined;

/**
 * When this machine booted (epoch ms, from `btime` in /proc/stat), or null without /proc.
 * Every process named in something written before that is gone, whatever now runs under its
 * pid: after a power cut, pids start over, and a new process (ckpt itself, started at boot)
 * easily gets the pid a worker had before.
 */
export function bootTimeMs(): number | null {
  if (bootMs === undefined) {
    try {
      const m = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'));
      bootMs = m ? Number(m[1]) * 1000 : null;
    } catch {
      bootMs = null;
    }
  }
  return bootMs;
}

/** Written (epoch ms) before this machine booted: its writer is gone. */
export function beforeBoot(atMs: number | null | undefined): boolean {
  const boot = bootTimeMs();
  return boot !== null && atMs !== null && atMs !== undefined && Number.isFinite(atMs) && atMs < boot;
}

export function sameProcess(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.host === b.host && a.startTicks === b.startTicks;
}

/**
 * isAlive, decided once per process for the life of the returned function. A pass that reads
 * journals and later removes markers must act on one verdict per owner: asked twice, an owner
 * SIGKILLed in between is alive at the first question (its journal is not read) and dead at
 * the second (its marker is removed), and its claim vanishes with its orphaned handler still
 * running (60-s soak: the next claim reused the attempt number and overlapped
 * that handler).
 */
export function livenessOnce(): (id: ProcessIdentity) => boolean {
  const seen = new Map<string, boolean>();
  return (id) => {
    const key = `${id.host}\0${id.pid}\0${id.startTicks ?? ''}`;
    let v = seen.get(key);
    if (v === undefined) {
      v = isAlive(id);
      seen.set(key, v);
    }
    return v;
  };
}
