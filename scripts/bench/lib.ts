/**
 * Shared pieces of the benchmark scripts (scripts/bench/*.ts). Each scenario script:
 *   - takes `--full` (the long version) or nothing (the short one run by `npm run bench`);
 *   - prints progress on stderr, and at the end ONE line `BENCH_RESULT {json}` on stdout that
 *     scripts/bench/run.ts collects into BENCHMARKS.md (plus a readable table row before it).
 *
 * Nothing here is a test: these are measurements on a noisy 2-core machine, so every goal is a
 * RATIO of two things measured in the same run, interleaved (A, B, A, B, ...), and each
 * figure is the median of its runs with the min-max beside it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BENCH_DIR = path.join(REPO, 'scripts/bench');
export const CLI = path.join(REPO, 'dist/cli/main.js');
export const NOOP_HANDLER = path.join(BENCH_DIR, 'fixtures/noop-handler.mjs');
export const STAMP_HANDLER = path.join(BENCH_DIR, 'fixtures/stamp-handler.mjs');

export const FULL = process.argv.includes('--full');
export const SIZE: 'short' | 'full' = FULL ? 'full' : 'short';

/** A numeric argument `--name=value`, for trying a scenario at another size by hand. */
export function argNumber(name: string, dflt: number): number {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  if (a === undefined) return dflt;
  const v = Number(a.slice(name.length + 3));
  if (!Number.isFinite(v)) throw new Error(`--${name} needs a number, got ${a}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Results

export interface Measure {
  /** What was measured, e.g. "ckpt pipeline (Runner, module no-op)". */
  name: string;
  unit: string;
  /** One value per run. */
  runs: number[];
  /** Higher is better (files/s) or lower is better (ms). */
  better: 'higher' | 'lower';
  note?: string;
}

export interface Ratio {
  /** The goal as the issue words it, e.g. "pipeline / raw batched >= 0.7". */
  goal: string;
  value: number | null;
  target: number;
  op: '>=' | '<=' | '<';
  /** How the value was formed, e.g. "median(ckpt) / median(raw)". */
  how: string;
}

export interface ScenarioResult {
  id: string;
  title: string;
  size: 'short' | 'full';
  /** The parameters used (files, stableMs, concurrency, ...). */
  params: Record<string, string | number | boolean>;
  measures: Measure[];
  ratios: Ratio[];
  notes: string[];
  elapsedS: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i] as number;
}

export function met(r: Ratio): boolean | null {
  if (r.value === null || !Number.isFinite(r.value)) return null;
  if (r.op === '>=') return r.value >= r.target;
  if (r.op === '<=') return r.value <= r.target;
  return r.value < r.target;
}

/** A number for a table: 3 significant digits, thousands separated. */
export function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

const started = performance.now();

/** Prints the readable rows and the one machine-readable line, and returns. */
export function emit(r: Omit<ScenarioResult, 'size' | 'elapsedS'>): void {
  const full: ScenarioResult = { ...r, size: SIZE, elapsedS: Math.round((performance.now() - started) / 100) / 10 };
  const out: string[] = [];
  out.push(`## ${r.id}. ${r.title} (${SIZE}; ${Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(', ')})`);
  for (const m of r.measures) {
    const range = m.runs.length > 1 ? `${fmt(Math.min(...m.runs))} to ${fmt(Math.max(...m.runs))}` : '';
    out.push(`| ${m.name} | ${fmt(median(m.runs))} ${m.unit} | ${range} | n=${m.runs.length} |${m.note ? ` ${m.note}` : ''}`);
  }
  for (const q of r.ratios) {
    const ok = met(q);
    out.push(`| ${q.goal} | ${fmt(q.value)} | ${ok === null ? 'n/a' : ok ? 'MET' : 'MISSED'} | ${q.how} |`);
  }
  for (const n of r.notes) out.push(`  note: ${n}`);
  process.stdout.write(`${out.join('\n')}\n`);
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(full)}\n`);
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Temp folders and files

const tmpDirs: string[] = [];

export function tmpDir(prefix = 'ckpt-bench-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

export function removeDir(d: string): void {
  fs.rmSync(d, { recursive: true, force: true });
  const i = tmpDirs.indexOf(d);
  if (i >= 0) tmpDirs.splice(i, 1);
}

const children = new Set<ChildProcess>();

/** Kill what we started and remove temp folders, also when a scenario throws or is interrupted. */
export function cleanup(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone already
    }
  }
  children.clear();
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** `n` small files `${prefix}${i}.csv` in `dir` (content like a tiny CSV). */
export function createFiles(dir: string, n: number, prefix = 'f'): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const out: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const p = path.join(dir, `${prefix}${i}.csv`);
    fs.writeFileSync(p, `id,value\n${i},x\n`);
    out[i] = p;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Processes

export function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

export function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((resolve) => c.once('exit', (code) => resolve(code)));
}

/** Resident set size and its peak (VmHWM) of a process, in MB; null when it is gone. */
export function rssOf(pid: number): { rssMb: number; peakMb: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/** inotify watches a process holds right now (summed over its inotify instances). */
export function inotifyWatchesOf(pid: number): number {
  let n = 0;
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0;
  }
  for (const fd of fds) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:inotify') continue;
      const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      for (const line of info.split('\n')) if (line.startsWith('inotify wd:')) n++;
    } catch {
      // fd closed meanwhile
    }
  }
  return n;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function until<T>(fn: () => T | undefined | null | false, timeoutMs: number, everyMs = 20, what = 'condition'): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== null && v !== false) return v;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The real daemon (`ckpt run` from dist/), as a child process

export interface DaemonConfig {
  watchDir: string;
  /** Handler: a module path, or a command argv. */
  module?: string;
  command?: string[];
  stableMs: number;
  concurrency?: number;
  onSuccess?: 'keep' | 'delete';
  rescanMs?: number;
  logLevel?: string;
  extra?: Record<string, unknown>;
  /** Node options for the daemon process, before the script (e.g. `--import` of a probe). */
  nodeArgs?: string[];
  /** Niceness of the daemon process (default: BENCH_DAEMON_NICE, or 0). */
  nice?: number;
}

export interface DaemonRun {
  child: ChildProcess;
  pid: number;
  dir: string;
  db: string;
  logFile: string;
  /** Log lines so far (JSON-parsed where possible). */
  logLines(): Record<string, unknown>[];
  /** SIGTERM, wait for the exit code. */
  stop(): Promise<number | null>;
}

export function daemonAvailable(): boolean {
  return fs.existsSync(CLI);
}

/**
 * Writes a config into `dir` and starts `node dist/cli/main.js run` there. stdout (pino JSON,
 * level info unless said otherwise) goes to a file in `dir`, as it would to a log file in
 * production: piping it into this process would put our own CPU on the measurement.
 */
export function startDaemon(dir: string, c: DaemonConfig, args: string[] = [], env: NodeJS.ProcessEnv = {}): DaemonRun {
  const cfg: Record<string, unknown> = {
    database: path.join(dir, 'ckpt.db'),
    watch: [{ dir: c.watchDir, poll: false }],
    handler: c.module !== undefined ? { module: c.module } : { command: c.command },
    stableMs: c.stableMs,
    concurrency: c.concurrency ?? 4,
    onSuccess: c.onSuccess ?? 'keep',
    log: { level: c.logLevel ?? 'info', format: 'json' },
    ...(c.rescanMs !== undefined ? { rescanMs: c.rescanMs } : {}),
    ...c.extra,
  };
  const cfgFile = path.join(dir, 'ckpt.config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  const logFile = path.join(dir, 'daemon.log');
  const out = fs.openSync(logFile, 'w');
  const err = fs.openSync(path.join(dir, 'daemon.stderr'), 'w');
  // BENCH_PROFILE_DIR=/some/dir: the daemon writes a V8 CPU profile there when it exits.
  const prof = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  const child = track(
    spawn(process.execPath, [...prof, ...(c.nodeArgs ?? []), CLI, 'run', '--config', cfgFile, ...args], { cwd: dir, stdio: ['ignore', out, err], env: { ...process.env, ...env } }),
  );
  fs.closeSync(out);
  fs.closeSync(err);
  // BENCH_DAEMON_NICE=10: the daemon runs at that niceness (what `Nice=` in a systemd unit does),
  // to see how much of a producer's slowdown is the daemon's share of the CPU.
  const nice = c.nice ?? Number(process.env.BENCH_DAEMON_NICE ?? 0);
  if (nice !== 0 && child.pid !== undefined) os.setPriority(child.pid, nice);
  const logLines = () => {
    let text = '';
    try {
      text = fs.readFileSync(logFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return { raw: l };
        }
      });
  };
  return {
    child,
    pid: child.pid as number,
    dir,
    db: cfg.database as string,
    logFile,
    logLines,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited(child);
    },
  };
}

/** Resolves when the daemon logged "ckpt running" (its start-up scan is done). */
export async function daemonStarted(d: DaemonRun, timeoutMs = 120_000): Promise<void> {
  const t0 = performance.now();
  let seen = 0;
  for (;;) {
    if (d.child.exitCode !== null) throw new Error(`daemon exited early (${d.child.exitCode}): ${fs.readFileSync(path.join(d.dir, 'daemon.stderr'), 'utf8').slice(0, 2000)}`);
    const text = fs.existsSync(d.logFile) ? fs.readFileSync(d.logFile, 'utf8') : '';
    if (text.length > seen && text.includes('"msg":"ckpt running"')) return;
    seen = text.length;
    if (performance.now() - t0 > timeoutMs) throw new Error('daemon did not start');
    await sleep(25);
  }
}

/** A read-only look at a ckpt database: row counts while a daemon writes it. */
export class DbPeek {
  private db: Database.Database | null = null;
  constructor(private readonly file: string) {}
  private open(): Database.Database | null {
    if (this.db) return this.db;
    if (!fs.existsSync(this.file)) return null;
    try {
      this.db = new Database(this.file, { readonly: true });
      this.db.pragma('busy_timeout = 1000');
      return this.db;
    } catch {
      return null;
    }
  }
  count(where = ''): number {
    const db = this.open();
    if (!db) return 0;
    try {
      return (db.prepare(`SELECT count(*) AS n FROM file_checkpoints ${where}`).get() as { n: number }).n;
    } catch {
      return 0;
    }
  }
  close(): void {
    this.db?.close();
    this.db = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Machine

export function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  } finally {
    db.close();
  }
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

// ---------------------------------------------------------------------------------------------
// liteque's own folder

export const LITEQUE_DIR = path.join(BENCH_DIR, 'liteque');

/**
 * Installs liteque and better-sqlite3 11.3 into scripts/bench/liteque/node_modules when they
 * are missing (`npm ci` against its lock file; the native build of better-sqlite3 takes 1-4
 * minutes here). `ready` false comes with the reason.
 */
export function ensureLiteque(): { ready: boolean; reason: string; installMs: number } {
  const marker = path.join(LITEQUE_DIR, 'node_modules/liteque/package.json');
  const native = path.join(LITEQUE_DIR, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  if (fs.existsSync(marker) && fs.existsSync(native)) return { ready: true, reason: '', installMs: 0 };
  const t0 = performance.now();
  log('installing liteque 0.8.0 + better-sqlite3 11.3.0 into scripts/bench/liteque (once; builds a native module)');
  const hasLock = fs.existsSync(path.join(LITEQUE_DIR, 'package-lock.json'));
  const r = spawnSync('npm', [hasLock ? 'ci' : 'install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: LITEQUE_DIR,
    encoding: 'utf8',
    timeout: 15 * 60_000,
  });
  const installMs = performance.now() - t0;
  if (r.status !== 0 || !fs.existsSync(marker) || !fs.existsSync(native)) {
    const why = (r.error?.message ?? `${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' ')) || `npm exited ${r.status}`;
    return { ready: false, reason: `npm could not install liteque in scripts/bench/liteque: ${why}`, installMs };
  }
  return { ready: true, reason: '', installMs };
}

// ---------------------------------------------------------------------------------------------
// Producers, handler stamps, RSS sampling

export const PRODUCER = path.join(BENCH_DIR, 'fixtures/producer.mjs');

export interface ProducerResult {
  startEpoch: number;
  endEpoch: number;
  ms: number;
  late: number;
  /** The producer's own CPU time, user and system, over its writes. */
  cpuUserMs: number;
  cpuSystemMs: number;
  /** Its writing thread on a CPU, and runnable but waiting for one (/proc/self/schedstat; NaN where not available). */
  onCpuMs: number;
  runqueueMs: number;
  /** Voluntary context switches: it went off the CPU to wait (a lock, the disk). */
  blockedSwitches: number;
}

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat; NaN when it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
/** USER_HZ: 100 on every Linux build this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

/** Runs fixtures/producer.mjs as its own process (see there) and returns its report. */
export async function runProducer(
  dir: string,
  count: number,
  opts: { rate?: number; dropsFile?: string; prefix?: string; mode?: 'write' | 'rename' } = {},
): Promise<ProducerResult> {
  const args = [PRODUCER, dir, String(count), String(opts.rate ?? 0), opts.dropsFile ?? '', opts.prefix ?? 'p', opts.mode ?? 'write'];
  const c = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  c.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const code = await exited(c);
  if (code !== 0) throw new Error(`producer exited ${code}`);
  return JSON.parse(out.trim()) as ProducerResult;
}

/** Reads the stamp handler's output ("<epochMs> <path>" lines) as it grows. */
export class StampsTail {
  readonly stamps = new Map<string, number>();
  private offset = 0;
  private rest = '';
  constructor(readonly file: string) {}
  poll(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      fs.readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      const text = this.rest + buf.toString('utf8');
      const lines = text.split('\n');
      this.rest = lines.pop() ?? '';
      for (const l of lines) {
        const i = l.indexOf(' ');
        if (i > 0 && !this.stamps.has(l.slice(i + 1))) this.stamps.set(l.slice(i + 1), Number(l.slice(0, i)));
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Samples a process's RSS every `everyMs` until stopped; keeps the peak and every sample. */
export class RssSampler {
  peakMb = 0;
  lastMb = 0;
  readonly samples: { t: number; rssMb: number; x: number }[] = [];
  private timer: NodeJS.Timeout;
  constructor(
    readonly pid: number,
    everyMs = 250,
    private readonly x: () => number = () => 0,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.sample();
  }
  sample(): void {
    const r = rssOf(this.pid);
    if (!r) return;
    this.lastMb = r.rssMb;
    this.peakMb = Math.max(this.peakMb, r.peakMb, r.rssMb);
    this.samples.push({ t: performance.now(), rssMb: r.rssMb, x: this.x() });
  }
  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}
