/**
 * Starting handler programs without blocking the daemon's event loop.
 *
 * Node's spawn() forks and then waits, inside the calling thread, until the child has exec'd;
 * the fork copies the page tables of the whole process, so the wait grows with the daemon's
 * RSS. Measured here (2 cores, load 5-9): spawn() blocked 15 ms a call from a 58 MB process and
 * 23-37 ms from a 160 MB one, so four slots of `true` made 26-41 files/s while `xargs -P4 true`
 * made 35-62. Through one small long-lived helper process (this file's HELPER_SOURCE, a plain
 * `node -e` script of about 45 MB that only forks) the daemon's thread is blocked 0.2-0.5 ms per
 * run and the same runs made 36-71 files/s, interleaved in the same minutes.
 *
 * Both launchers report the same four things (spawned with a pid, could not start, exited,
 * closed with the output tails), so command-handler.ts keeps one code path for timeouts,
 * kills and outcomes; process groups are signalled from the daemon with kill(-pgid), which
 * does not care whose child the group leader is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

export interface LaunchRequest {
  program: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string | undefined;
  /** Bytes kept from the end of stdout and of stderr. */
  tailBytes: number;
  /** After the exit, how long stdout/stderr may stay open before they are abandoned. */
  drainMs: number;
  /**
   * Do not start the program after this time (epoch ms): the claim's lease. A daemon stopped
   * (SIGSTOP, or a stall) between sending the request and the fork would otherwise start its
   * handler after another worker took the file over: the soak saw a run start 12 s late,
   * 183 ms beside the new owner's run. Checked by whoever forks, as late as
   * possible; refused as `ELEASE`.
   */
  notAfter?: number;
}

/** The error a launcher reports for a request whose `notAfter` has passed. */
export const LEASE_PASSED = 'ELEASE';

/** Output kept from one stream: the last bytes, and how many there were in all. */
export interface OutputTail {
  bytes: Buffer;
  seen: number;
}

export interface LaunchEvents {
  /** Started: `pid` leads its own process group. */
  spawned(pid: number): void;
  /** Could not be started at all (ENOENT, EACCES, a NUL byte in the environment...). */
  failed(err: NodeJS.ErrnoException): void;
  /** The program exited; `leftovers` when processes left in its group were SIGKILLed. */
  exited(code: number | null, signal: NodeJS.Signals | null, leftovers: boolean): void;
  /** stdout and stderr are closed (or were abandoned after drainMs): the last event. */
  closed(stdout: OutputTail, stderr: OutputTail, abandoned: boolean): void;
  /** An error of a started child (rare): logged, the run goes on. */
  childError(err: Error): void;
}

export type Launcher = (req: LaunchRequest, ev: LaunchEvents) => void;

/**
 * The helper, run as `node -e HELPER_SOURCE <tailBytes is per request>`: newline-delimited
 * JSON in on stdin (one request a line), out on stdout (events, tagged with the request id).
 * Plain CommonJS in a string so that it runs the same from src/ (tests, tsx) and dist/.
 * It exits when its stdin closes, i.e. when the daemon is gone; the handlers it started lead
 * their own process groups and are the daemon's (or orphans.ts's) to kill, as before.
 */
const HELPER_SOURCE = String.raw`'use strict';
const { spawn } = require('node:child_process');
const send = (o) => process.stdout.write(JSON.stringify(o) + '\n');
process.stdout.on('error', () => process.exit(0));
function tail(limit) {
  let buf = Buffer.alloc(0);
  let seen = 0;
  return {
    push(c) {
      seen += c.length;
      if (c.length >= limit) { buf = Buffer.from(c.subarray(c.length - limit)); return; }
      const keep = Math.min(buf.length, limit - c.length);
      buf = Buffer.concat([buf.subarray(buf.length - keep), c]);
    },
    out() { return { b: buf.toString('base64'), n: seen }; },
  };
}
function run(r) {
  if (r.notAfter !== undefined && Date.now() > r.notAfter) {
    send({ id: r.id, ev: 'failed', code: 'ELEASE', message: 'not started: the lease ran out before the handler could start' });
    return;
  }
  let c;
  try {
    c = spawn(r.program, r.args, { shell: false, detached: true, stdio: ['ignore', 'pipe', 'pipe'], cwd: r.cwd, env: r.env });
  } catch (e) {
    send({ id: r.id, ev: 'failed', code: e.code, message: e.message });
    return;
  }
  const out = tail(r.tailBytes);
  const err = tail(r.tailBytes);
  c.stdout.on('data', (d) => out.push(d));
  c.stderr.on('data', (d) => err.push(d));
  let abandoned = false;
  let drain;
  c.on('error', (e) => {
    if (c.pid === undefined) send({ id: r.id, ev: 'failed', code: e.code, message: e.message });
    else send({ id: r.id, ev: 'childError', message: e.message });
  });
  if (c.pid !== undefined) send({ id: r.id, ev: 'spawned', pid: c.pid });
  c.on('exit', (code, signal) => {
    let leftovers = false;
    try { process.kill(-c.pid, 'SIGKILL'); leftovers = true; } catch {}
    send({ id: r.id, ev: 'exited', code, signal, leftovers });
    drain = setTimeout(() => { abandoned = true; c.stdout.destroy(); c.stderr.destroy(); }, r.drainMs);
  });
  c.on('close', () => {
    clearTimeout(drain);
    if (c.pid !== undefined) send({ id: r.id, ev: 'closed', out: out.out(), err: err.out(), abandoned });
  });
}
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (s) => {
  pending += s;
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (line !== '') run(JSON.parse(line));
  }
});
process.stdin.on('end', () => process.exit(0));
`;

interface HelperEvent {
  id: number;
  ev: 'spawned' | 'failed' | 'exited' | 'closed' | 'childError';
  pid?: number;
  code?: string | number | null;
  message?: string;
  signal?: NodeJS.Signals | null;
  leftovers?: boolean;
  out?: { b: string; n: number };
  err?: { b: string; n: number };
  abandoned?: boolean;
}

interface Pending {
  ev: LaunchEvents;
  pid: number | undefined;
  exited: boolean;
}

function tailOf(t: { b: string; n: number } | undefined): OutputTail {
  return t === undefined ? { bytes: Buffer.alloc(0), seen: 0 } : { bytes: Buffer.from(t.b, 'base64'), seen: t.n };
}

function errnoError(code: string | undefined, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

/**
 * V8 flags for the helper: a 1 MB young generation and no V8 background threads. A fork copies
 * and write-protects the page tables of the forking process, and every page it then writes
 * faults once, so a smaller, quieter helper forks for less: measured here (2 cores, load 7-10,
 * 300 runs of `true` four at a time, 5 interleaved rounds) 5.2-5.7 ms of the forking process's
 * CPU per run instead of 6.2-6.6 ms. Not --jitless: it saved little more, and it slows the
 * helper's own JavaScript (Node's spawn code), i.e. the time until 'spawned' reaches the daemon.
 */
const HELPER_NODE_FLAGS = ['--max-semi-space-size=1', '--single-threaded'];

/** One helper process, started on first use and again after it died. */
export class SpawnHelper {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = '';

  readonly launch: Launcher = (req, ev) => {
    const child = this.child ?? this.start();
    const id = this.nextId++;
    this.pending.set(id, { ev, pid: undefined, exited: false });
    this.setRef(true);
    const { program, args, env, cwd, tailBytes, drainMs, notAfter } = req;
    child.stdin?.write(`${JSON.stringify({ id, program, args, env, cwd, tailBytes, drainMs, notAfter })}\n`);
  };

  /** The helper's pid (tests), or undefined when none is running. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Closes the helper's stdin: it exits. Runs in flight are reported as lost. */
  close(): void {
    this.child?.stdin?.end();
  }

  private start(): ChildProcess {
    const env = { ...process.env };
    // The daemon may run under a loader (tsx in tests): the helper needs none of it.
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [...HELPER_NODE_FLAGS, '-e', HELPER_SOURCE], { stdio: ['pipe', 'pipe', 'inherit'], env });
    this.child = child;
    this.buffered = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => this.onData(s));
    child.stdin?.on('error', () => undefined); // EPIPE when it died: its 'exit' reports that
    child.on('error', () => undefined); // could not start: 'exit' (or 'close') follows
    child.on('close', (code, signal) => {
      if (this.child === child) this.child = null;
      this.helperGone(`the spawn helper process exited (${code !== null ? `code ${code}` : `signal ${signal ?? '?'}`})`);
    });
    return child;
  }

  private setRef(on: boolean): void {
    const c = this.child;
    if (c === null) return;
    const streams = [c.stdin, c.stdout] as unknown as Array<Socket | null>;
    if (on) {
      c.ref();
      for (const s of streams) s?.ref?.();
    } else {
      c.unref();
      for (const s of streams) s?.unref?.();
    }
  }

  private onData(s: string): void {
    this.buffered += s;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (line !== '') this.onEvent(JSON.parse(line) as HelperEvent);
    }
  }

  private onEvent(m: HelperEvent): void {
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    switch (m.ev) {
      case 'spawned':
        p.pid = m.pid;
        p.ev.spawned(m.pid as number);
        return;
      case 'failed':
        this.finish(m.id);
        p.ev.failed(errnoError(typeof m.code === 'string' ? m.code : undefined, m.message ?? 'could not start'));
        return;
      case 'exited':
        p.exited = true;
        p.ev.exited(typeof m.code === 'number' ? m.code : null, m.signal ?? null, m.leftovers === true);
        return;
      case 'closed':
        this.finish(m.id);
        p.ev.closed(tailOf(m.out), tailOf(m.err), m.abandoned === true);
        return;
      case 'childError':
        p.ev.childError(new Error(m.message ?? 'child process error'));
        return;
    }
  }

  private finish(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.setRef(false);
  }

  /**
   * The helper died (killed, out of memory): runs not started yet fail to start; started ones
   * can no longer be watched, so their process groups are killed and they end as killed.
   */
  private helperGone(why: string): void {
    const runs = [...this.pending.values()];
    this.pending.clear();
    const note = Buffer.from(`ckpt: ${why}; the handler's process group was killed`);
    for (const p of runs) {
      if (p.pid === undefined) {
        p.ev.failed(errnoError('EHELPER', why));
        continue;
      }
      if (!p.exited) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        p.ev.exited(null, 'SIGKILL', false);
      }
      p.ev.closed({ bytes: Buffer.alloc(0), seen: 0 }, { bytes: note, seen: note.length }, false);
    }
  }
}
