/**
 * Fault injection. Every `faultEvery` (on average) one fault of the enabled kinds is started:
 *
 *   kill     SIGKILL a daemon, start a new one in its slot 0.1-1 s later
 *   stop     SIGSTOP a daemon for leaseMs + 1-3 s (its leases run out and are taken over), SIGCONT
 *   term     SIGTERM a daemon (graceful: must exit 0 within shutdownGraceMs + margin), restart it
 *   lock     the sqlite3 shell holds BEGIN EXCLUSIVE on the database for a few seconds
 *   corrupt  one page in the middle of the database file overwritten with random bytes
 *
 * A fault on a daemon picks one that is running normally, and never the last one: the soak is
 * about what happens around a fault, and a run where nobody can take over proves less. At most
 * one daemon is stopped and one lock held at a time.
 *
 * Each fault is recorded with its monotonic window [t0, t1] (a kill is a point), which is what
 * the checker uses to tell a run that was legitimately interrupted from one that was not.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { DaemonPool, Instance } from './daemons.js';
import type { FaultKind } from './options.js';
import type { Random } from './random.js';

export interface FaultRecord {
  kind: FaultKind;
  /** The daemon it hit (kill, stop, term); none for lock and corrupt, which hit everyone. */
  workerId: string | null;
  t0: bigint;
  t1: bigint;
  note: string;
}

export interface FaultOptions {
  kinds: readonly FaultKind[];
  everyMs: number;
  leaseMs: number;
  shutdownGraceMs: number;
  lockHoldMs: [number, number];
  database: string;
  pool: DaemonPool;
  rnd: Random;
  violation: (kind: string, detail: string) => void;
  progress: (msg: string) => void;
}

const now = () => process.hrtime.bigint();

export class FaultInjector {
  readonly done: FaultRecord[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly ac = new AbortController();
  private loop: Promise<void> | null = null;
  private stopped = 0;
  private locking = false;
  private corruptions = 0;

  constructor(private readonly o: FaultOptions) {}

  start(): void {
    if (this.o.kinds.length === 0) return;
    this.loop = this.run();
  }

  /** No new faults; running ones end early (SIGCONT, COMMIT); killed/terminated slots are restarted. */
  async stop(): Promise<void> {
    this.ac.abort();
    await this.loop;
    await Promise.allSettled([...this.inFlight]);
  }

  counts(): Record<FaultKind, number> {
    const c: Record<FaultKind, number> = { kill: 0, stop: 0, term: 0, lock: 0, corrupt: 0 };
    for (const f of this.done) c[f.kind]++;
    return c;
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.ac.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private async run(): Promise<void> {
    while (!this.ac.signal.aborted) {
      await this.sleep(this.o.everyMs * (0.5 + this.o.rnd.next()));
      if (this.ac.signal.aborted) break;
      const kind = this.o.rnd.pick(this.o.kinds);
      const job = this.inject(kind).catch((err: unknown) => this.o.violation('fault-injection', `${kind}: ${(err as Error).stack ?? String(err)}`));
      this.inFlight.add(job);
      void job.finally(() => this.inFlight.delete(job));
    }
  }

  private target(): Instance | null {
    const running = this.o.pool.running();
    if (running.length < 2) return null;
    return this.o.rnd.pick(running);
  }

  private async inject(kind: FaultKind): Promise<void> {
    switch (kind) {
      case 'kill':
        return this.kill();
      case 'stop':
        return this.stopCont();
      case 'term':
        return this.term();
      case 'lock':
        return this.lock();
      case 'corrupt':
        return this.corrupt();
    }
  }

  private async restart(slot: number): Promise<void> {
    try {
      await this.o.pool.start(slot);
    } catch (err) {
      this.o.violation('restart', `slot ${slot}: ${(err as Error).message}`);
    }
  }

  private async kill(): Promise<void> {
    const i = this.target();
    if (!i) return;
    i.expectedExit = true;
    i.state = 'exiting';
    const t0 = now();
    process.kill(i.pid, 'SIGKILL');
    this.done.push({ kind: 'kill', workerId: i.workerId, t0, t1: t0, note: `slot ${i.slot}` });
    this.o.progress(`fault: SIGKILL ${i.workerId}`);
    await i.exited;
    // Restarted even while stopping: the drain needs every slot's daemon.
    await new Promise((r) => setTimeout(r, this.o.rnd.int(100, 1000)));
    await this.restart(i.slot);
  }

  private async stopCont(): Promise<void> {
    if (this.stopped > 0) return;
    const i = this.target();
    if (!i) return;
    this.stopped++;
    const t0 = now();
    process.kill(i.pid, 'SIGSTOP');
    i.state = 'stopped';
    const ms = this.o.leaseMs + this.o.rnd.int(1000, 3000);
    this.o.progress(`fault: SIGSTOP ${i.workerId} for ${ms} ms`);
    try {
      await this.sleep(ms);
    } finally {
      process.kill(i.pid, 'SIGCONT');
      const t1 = now();
      if (i.state === 'stopped') i.state = 'running';
      this.stopped--;
      this.done.push({ kind: 'stop', workerId: i.workerId, t0, t1, note: `slot ${i.slot}, ${Math.round(Number(t1 - t0) / 1e6)} ms` });
      this.o.progress(`fault: SIGCONT ${i.workerId}`);
    }
  }

  private async term(): Promise<void> {
    const i = this.target();
    if (!i) return;
    i.expectedExit = true;
    i.state = 'exiting';
    const t0 = now();
    process.kill(i.pid, 'SIGTERM');
    this.o.progress(`fault: SIGTERM ${i.workerId}`);
    // Grace for the handlers, then their give-back; a daemon that hangs here is a violation.
    const limitMs = this.o.shutdownGraceMs + 15_000;
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), limitMs).unref());
    const ex = await Promise.race([i.exited, timer]);
    if (ex === 'timeout') {
      this.o.violation('term-hang', `${i.workerId} still running ${limitMs} ms after SIGTERM; killed`);
      process.kill(i.pid, 'SIGKILL');
      await i.exited;
    } else if (ex.code !== 0) {
      this.o.violation('term-exit-code', `${i.workerId} exited with ${ex.code ?? ex.signal} after SIGTERM (expected 0)`);
    }
    this.done.push({ kind: 'term', workerId: i.workerId, t0, t1: i.exitedAt ?? now(), note: `slot ${i.slot}` });
    await this.restart(i.slot);
  }

  /** The sqlite3 shell takes the write lock and sits on it, like an operator who forgot a BEGIN. */
  private async lock(): Promise<void> {
    if (this.locking) return;
    this.locking = true;
    try {
      const sh = spawn('sqlite3', [this.o.database], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
      sh.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<void>((r) => sh.on('close', () => r()));
      // The shell has no busy timeout by default: wait for the daemons' own short transactions.
      sh.stdin.write(".timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'LOCKED';\n");
      const deadline = Date.now() + 15_000;
      while (!out.includes('LOCKED') && Date.now() < deadline && sh.exitCode === null) await new Promise((r) => setTimeout(r, 10));
      if (!out.includes('LOCKED')) {
        sh.kill('SIGKILL');
        this.o.violation('fault-injection', `lock: the sqlite3 shell could not take the lock: ${err.trim()}`);
        return;
      }
      const t0 = now();
      const ms = this.o.rnd.int(this.o.lockHoldMs[0], this.o.lockHoldMs[1]);
      this.o.progress(`fault: sqlite3 holds BEGIN EXCLUSIVE for ${ms} ms`);
      await this.sleep(ms);
      sh.stdin.end('COMMIT;\n.quit\n');
      await exited;
      this.done.push({ kind: 'lock', workerId: null, t0, t1: now(), note: `${ms} ms` });
    } finally {
      this.locking = false;
    }
  }

  /** One page in the middle of the file: most statements go on working, those touching it fail. */
  private async corrupt(): Promise<void> {
    if (this.corruptions >= 1) return; // one per run: after it, the fallback's salvage decides what is left
    const size = fs.statSync(this.o.database).size;
    const page = 4096;
    const pages = Math.floor(size / page);
    if (pages < 4) return; // too young to have a middle
    this.corruptions++;
    const k = this.o.rnd.int(1, pages - 2);
    const fd = fs.openSync(this.o.database, 'r+');
    try {
      fs.writeSync(fd, randomBytes(page), 0, page, k * page);
    } finally {
      fs.closeSync(fd);
    }
    const t0 = now();
    this.done.push({ kind: 'corrupt', workerId: null, t0, t1: t0, note: `page ${k + 1} of ${pages}` });
    this.o.progress(`fault: page ${k + 1} of ${pages} of the database overwritten`);
    await Promise.resolve();
  }
}
