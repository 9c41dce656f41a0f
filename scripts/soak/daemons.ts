/**
 * The daemons under test: real `node dist/cli/main.js run` processes, one per slot, each with its
 * JSON log written straight to a file (not through a pipe into the soak: at 200 files/s that is
 * megabytes a minute the soak would only copy). A slot whose daemon was killed gets a new one;
 * every process that ever ran is kept in `instances` so the checker can map a worker id
 * (`hostname:pid`, what the handler sees in CKPT_WORKER_ID) back to its faults.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Instance {
  slot: number;
  /** 0 for the slot's first daemon, then 1, 2, ... per restart. */
  n: number;
  pid: number;
  workerId: string;
  log: string;
  startedAt: bigint;
  exitedAt: bigint | null;
  exit: Exit | null;
  /** We signalled it to end (SIGKILL, SIGTERM): its exit is not a crash. */
  expectedExit: boolean;
  state: 'starting' | 'running' | 'stopped' | 'exiting' | 'gone';
  child: ChildProcess;
  exited: Promise<Exit>;
}

export interface PoolOptions {
  cli: string;
  config: string;
  workDir: string;
  env: NodeJS.ProcessEnv;
  /** A daemon ended without being told to: the soak records a violation. */
  onCrash: (i: Instance) => void;
}

export class DaemonPool {
  readonly instances: Instance[] = [];
  readonly slots: (Instance | null)[] = [];
  private readonly host = os.hostname();

  constructor(private readonly o: PoolOptions) {}

  /**
   * The end of a run: SIGCONT and SIGTERM to every daemon still there, and how each ended
   * ('hang' when it was still running `limitMs` later).
   */
  async stopAll(limitMs: number): Promise<{ instance: Instance; exit: Awaited<Instance['exited']> | 'hang' }[]> {
    const live = this.slots.filter((i): i is Instance => i !== null && i.state !== 'gone');
    for (const i of live) {
      i.expectedExit = true;
      process.kill(i.pid, 'SIGCONT');
      process.kill(i.pid, 'SIGTERM');
    }
    return Promise.all(
      live.map(async (instance) => {
        const exit = await Promise.race([instance.exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), limitMs).unref())]);
        return { instance, exit };
      }),
    );
  }

  /** Starts a daemon in `slot` and resolves once it logged `ckpt running` (start-up scan done). */
  async start(slot: number): Promise<Instance> {
    const n = this.instances.filter((i) => i.slot === slot).length;
    const log = path.join(this.o.workDir, 'logs', `daemon-${slot}-${n}.log`);
    fs.mkdirSync(path.dirname(log), { recursive: true });
    const fd = fs.openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [this.o.cli, 'run', '--config', this.o.config], {
        cwd: this.o.workDir,
        env: this.o.env,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      fs.closeSync(fd);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start a daemon in slot ${slot}`);
    const inst: Instance = {
      slot,
      n,
      pid,
      workerId: `${this.host}:${pid}`,
      log,
      startedAt: process.hrtime.bigint(),
      exitedAt: null,
      exit: null,
      expectedExit: false,
      state: 'starting',
      child,
      exited: Promise.resolve({ code: null, signal: null }),
    };
    inst.exited = new Promise<Exit>((resolve) => {
      child.on('exit', (code, signal) => {
        inst.exitedAt = process.hrtime.bigint();
        inst.exit = { code, signal };
        inst.state = 'gone';
        if (!inst.expectedExit) this.o.onCrash(inst);
        resolve(inst.exit);
      });
    });
    this.instances.push(inst);
    this.slots[slot] = inst;
    await this.waitRunning(inst);
    return inst;
  }

  private async waitRunning(inst: Instance): Promise<void> {
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (inst.state === 'gone') throw new Error(`daemon ${inst.workerId} exited during start-up: ${tail(inst.log, 20)}`);
      let text = '';
      try {
        text = fs.readFileSync(inst.log, 'utf8');
      } catch {
        // not there yet
      }
      if (text.includes('"msg":"ckpt running"')) {
        if (inst.state === 'starting') inst.state = 'running';
        return;
      }
      if (Date.now() > deadline) throw new Error(`daemon ${inst.workerId} did not log "ckpt running" within 90 s: ${tail(inst.log, 20)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  running(): Instance[] {
    return this.slots.filter((i): i is Instance => i !== null && i.state === 'running');
  }

  byWorker(): Map<string, Instance> {
    return new Map(this.instances.map((i) => [i.workerId, i]));
  }

  /** Last resort on the way out: SIGCONT and SIGKILL whatever is still alive. */
  killAll(): void {
    for (const i of this.instances) {
      if (i.state === 'gone') continue;
      i.expectedExit = true;
      try {
        process.kill(i.pid, 'SIGCONT');
        process.kill(i.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}

/** The last `n` lines of a log file, for evidence in a report. */
export function tail(file: string, n: number): string {
  try {
    const size = fs.statSync(file).size;
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, buf, 0, len, size - len);
    } finally {
      fs.closeSync(fd);
    }
    return buf.toString('utf8').split('\n').filter(Boolean).slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}
