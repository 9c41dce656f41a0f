/**
 * Killing the command handler a dead daemon left behind.
 *
 * A command handler runs in its own process group, so when its daemon is SIGKILLed it keeps
 * running (reparented to init). Before another daemon on the same host runs the same file
 * again, that orphan must be gone, or two handlers would load the same file at once. The store
 * calls this from inside its claim transaction (ClaimOptions.onExpired), which is synchronous:
 * so is everything here, including the short waits (Atomics.wait, not a busy loop).
 *
 * The recorded pgid alone is not proof: the pid may have been reused since. A process is killed
 * only if it is in that process group AND its environment carries `CKPT_CLAIM_TOKEN=<token>`,
 * which the command handler sets for every run and which its descendants inherit.
 *
 * Linux only (/proc). Where /proc is missing this finds nothing and kills nothing.
 */
import fs from 'node:fs';

/** How long to wait for killed processes to disappear: SIGKILL takes effect in milliseconds. */
const WAIT_GONE_MS = 1000;
const POLL_MS = 10;

export interface OrphanKillResult {
  /** Processes sent SIGKILL. */
  killed: number;
  /** Of those, processes still not gone when the wait ran out (normally 0). */
  remaining: number;
}

export interface ProcStat {
  pid: number;
  /** The executable name (`comm`), up to 15 bytes; may contain spaces and parentheses. */
  comm: string;
  /** One letter: R, S, D, Z (zombie), T, ... */
  state: string;
  ppid: number;
  pgrp: number;
}

/**
 * Parses /proc/PID/stat. The second field is the command name in parentheses, and the name
 * itself may contain spaces and parentheses (`(a) b (c)`), so the fields after it are found from
 * the LAST `)`; splitting the whole line on spaces would misread them. Returns null when the
 * text does not have that shape.
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 1).trim().split(/\s+/);
  const [state, ppidText, pgrpText] = rest;
  if (state === undefined || ppidText === undefined || pgrpText === undefined) return null;
  const ppid = Number(ppidText);
  const pgrp = Number(pgrpText);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isInteger(pgrp)) return null;
  return { pid, comm: text.slice(open + 1, close), state, ppid, pgrp };
}

function readStat(pid: number): ProcStat | null {
  try {
    // latin1: comm is raw bytes; the numeric fields are ASCII either way.
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return null; // gone, or not ours to read
  }
}

/** True when /proc/PID/environ has exactly the entry `CKPT_CLAIM_TOKEN=<token>`. */
function carriesToken(pid: number, entry: Buffer): boolean {
  let env: Buffer;
  try {
    env = fs.readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false; // gone, or another user's process (EACCES): not something we started
  }
  let start = 0;
  while (start < env.length) {
    let end = env.indexOf(0, start);
    if (end === -1) end = env.length;
    if (end - start === entry.length && env.compare(entry, 0, entry.length, start, end) === 0) return true;
    start = end + 1;
  }
  return false;
}

/** Living (non-zombie) processes of group `pgid` that carry the token. */
function findMembers(pgid: number | null, entry: Buffer): number[] {
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const stat = readStat(pid);
    // A zombie is already dead (its parent has not reaped it yet) and has no environ left.
    if (stat === null || (pgid !== null && stat.pgrp !== pgid) || stat.state === 'Z') continue;
    if (carriesToken(pid, entry)) found.push(pid);
  }
  return found;
}

function isAlive(pid: number, pgid: number | null): boolean {
  const stat = readStat(pid);
  return stat !== null && (pgid === null || stat.pgrp === pgid) && stat.state !== 'Z';
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * SIGKILLs every process of group `pgid` whose environment has `CKPT_CLAIM_TOKEN=<claimToken>`,
 * then waits (up to 1 s) until they are gone. Synchronous: it runs inside a SQLite transaction.
 * Scans again after killing, because a member may have forked between the scan and the kill.
 */
export function killOrphanedHandler(pgid: number | null, claimToken: string): OrphanKillResult {
  // 0 and 1 are never a handler's group; this process itself is skipped in findMembers().
  // null: the worker died before it could record the group (a window of one write after the
  // spawn), so look in every process for the token instead.
  if ((pgid !== null && (!Number.isInteger(pgid) || pgid <= 1)) || claimToken === '') return { killed: 0, remaining: 0 };
  const entry = Buffer.from(`CKPT_CLAIM_TOKEN=${claimToken}`);
  const killed = new Set<number>();
  const deadline = Date.now() + WAIT_GONE_MS;
  for (;;) {
    const members = findMembers(pgid, entry);
    for (const pid of members) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // ESRCH: gone meanwhile. EPERM: cannot happen for a process we could read environ of.
      }
    }
    const alive = [...killed].filter((pid) => isAlive(pid, pgid));
    if (members.length === 0 && alive.length === 0) return { killed: killed.size, remaining: 0 };
    if (Date.now() >= deadline) return { killed: killed.size, remaining: alive.length };
    sleepSync(POLL_MS);
  }
}
