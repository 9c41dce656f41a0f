/**
 * A real `ckpt run --once` under strace, and its trace as a list of system calls in the order
 * the kernel saw them.
 *
 * strace -f writes one line per call; a call interrupted by another thread's is split into
 * `PID name(args <unfinished ...>` and `PID <... name resumed>rest) = ret`. Both halves are
 * joined here, keeping the line numbers: `start` (the call was entered: the tracee is stopped
 * there until strace has printed it) and `end` (it had returned). "A before B" below always
 * means a.end < b.start, which holds in real time too. `-y` prints each descriptor's path
 * (`22</srv/ckpt.db-wal>`), `-s` prints whole write buffers, so a test can tell which write
 * carried which file's outcome.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI } from '../helpers/daemon.js';

/**
 * Whether strace can run here: skip the tests that need it with a warning, but with CI=true a
 * missing strace fails them (.ci/run installs it).
 */
export function straceAvailable(what: string): boolean {
  const r = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (r.status === 0) return true;
  if (process.env.CI === 'true') throw new Error(`${what}: strace is needed (apt-get install strace)`);
  console.warn(`[skip] ${what}: strace is not installed`);
  return false;
}

export interface Call {
  tid: number;
  name: string;
  /** The argument text as strace printed it (buffers escaped). */
  args: string;
  ret: string;
  /** Line numbers of the entry and of the return. */
  start: number;
  end: number;
}

/** Calls that can write the ledger, sync it, or change folders. */
export const TRACED = [
  'write', 'pwrite64', 'fsync', 'fdatasync', 'ftruncate',
  'rename', 'renameat', 'renameat2', 'link', 'linkat', 'unlink', 'unlinkat', 'mkdir', 'mkdirat',
];

export interface TraceRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  calls: Call[];
}

/**
 * `strace ... node dist/cli/main.js run --once --config <config>` in `cwd`. `extra`: more strace
 * options (a fault injection, say).
 */
export function traceRun(cwd: string, config: string, traceFile: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TraceRun> {
  const args = ['-f', '-y', '-qq', '-s', '65536', '-o', traceFile, '-e', `trace=${TRACED.join(',')}`, ...extra, process.execPath, CLI, 'run', '--once', '--config', config];
  return new Promise((resolve, reject) => {
    const child = spawn('strace', args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const calls = fs.existsSync(traceFile) ? parseTrace(fs.readFileSync(traceFile, 'utf8')) : [];
      resolve({ code, signal, stdout, stderr, calls });
    });
  });
}

export function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  const open = new Map<number, Call>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    // strace pads the pid column (`2256  rename(...`).
    const resumed = /^(\d+) +<\.\.\. (\w+) resumed>(.*)$/.exec(line);
    if (resumed) {
      const tid = Number(resumed[1]);
      const c = open.get(tid);
      if (!c) continue;
      open.delete(tid);
      const { args, ret } = splitReturn(resumed[3]!);
      c.args += args;
      c.ret = ret;
      c.end = i;
      continue;
    }
    const m = /^(\d+) +(\w+)\((.*)$/.exec(line);
    if (!m) continue;
    const tid = Number(m[1]);
    const rest = m[3]!;
    const c: Call = { tid, name: m[2]!, args: '', ret: '', start: i, end: i };
    calls.push(c);
    if (rest.endsWith(' <unfinished ...>')) {
      c.args = rest.slice(0, -' <unfinished ...>'.length);
      open.set(tid, c);
    } else {
      Object.assign(c, splitReturn(rest));
    }
  }
  return calls;
}

/** `args) = ret`; strace pads short lines before the `=` to column 40. */
function splitReturn(rest: string): { args: string; ret: string } {
  const m = /^([\s\S]*)\) +=(?: (.*))?$/.exec(rest);
  return m ? { args: m[1]!, ret: m[2] ?? '' } : { args: rest, ret: '' };
}

/** The path of the call's first argument when it is a descriptor (`-y`), else null. */
export function fdPath(c: Call): string | null {
  const m = /^\d+<([^>]*)>/.exec(c.args);
  return m ? m[1]! : null;
}

/** The quoted strings among the arguments: paths for rename/link/unlink, the buffer for writes. */
export function quoted(c: Call): string[] {
  return [...c.args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
}

/**
 * The bytes of a write's buffer, from strace's escaped text (`\n`, `\t`, `\"`, `\\`, `\xNN`
 * and octal `\NNN`).
 */
export function unescapeBuffer(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (s[i] !== '\\') {
      out.push(ch);
      continue;
    }
    const n = s[++i]!;
    const simple: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, '"': 34, '\\': 92 };
    if (n in simple) out.push(simple[n]!);
    else if (n === 'x') {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/[0-7]/.test(n)) {
      let j = i;
      while (j < i + 3 && /[0-7]/.test(s[j] ?? '')) j++;
      out.push(parseInt(s.slice(i, j), 8));
      i = j - 1;
    } else out.push(n.charCodeAt(0));
  }
  return Buffer.from(out);
}

/** The calls that take a name out of a folder (its first path argument), in trace order. */
export const REMOVERS = new Set(['rename', 'renameat', 'renameat2', 'unlink', 'unlinkat']);

/** The path a rename/unlink/link takes a name from, or null. */
export function sourcePath(c: Call): string | null {
  return quoted(c)[0] ?? null;
}

export function isSync(c: Call): boolean {
  return c.name === 'fsync' || c.name === 'fdatasync';
}

export function isWrite(c: Call): boolean {
  return c.name === 'write' || c.name === 'pwrite64';
}

/** The offset argument of a pwrite64 (the last one). */
export function pwriteOffset(c: Call): number {
  const m = /, (\d+)$/.exec(c.args);
  return m ? Number(m[1]) : NaN;
}

/** The call returned, without an error (a call cut short by a kill shows `= ?`: it did not happen). */
export function ok(c: Call): boolean {
  return c.ret !== '?' && c.ret !== '' && !c.ret.startsWith('-1');
}

export const dirOf = path.dirname;
