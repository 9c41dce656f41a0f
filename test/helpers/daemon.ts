/**
 * Real daemons for integration tests: a temp folder with an inbox and a config, `ckpt run` as a
 * child process (the built CLI, dist/cli/main.js: `npm test` builds first), its JSON log lines
 * collected, and the recorder handler's log parsed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { REPO, type Ran, run } from './spawn.js';
import { tmpDir } from './tmp.js';
import { waitFor } from './wait.js';

export const CLI = path.join(REPO, 'dist/cli/main.js');
export const RECORDER = path.join(REPO, 'test/fixtures/daemon/recorder.mjs');

export interface Setup {
  dir: string;
  inbox: string;
  db: string;
  config: string;
  recordLog: string;
}

/** A folder with inbox/, a config (merged over sensible test defaults) and a record log. */
export function setup(overrides: Record<string, unknown> = {}): Setup {
  const dir = tmpDir('ckpt-daemon-');
  const inbox = path.join(dir, 'inbox');
  fs.mkdirSync(inbox);
  const cfg = {
    database: 'ckpt.db',
    watch: [{ dir: 'inbox' }],
    handler: { command: [process.execPath, RECORDER, '{path}'] },
    stableMs: 150,
    rescanMs: 2_000,
    leaseMs: 3_000,
    concurrency: 2,
    shutdownGraceMs: 2_000,
    retry: { maxRetries: 2, baseDelayMs: 50, maxDelayMs: 200 },
    log: { level: 'debug', format: 'json' },
    ...overrides,
  };
  const config = path.join(dir, 'ckpt.config.json');
  fs.writeFileSync(config, JSON.stringify(cfg, null, 2));
  return { dir, inbox, db: path.join(dir, 'ckpt.db'), config, recordLog: path.join(dir, 'record.log') };
}

export interface Daemon {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const live = new Set<ChildProcess>();

export function startDaemon(s: Setup, args: string[] = [], env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(process.execPath, [CLI, 'run', '--config', s.config, ...args], {
    cwd: s.dir,
    env: { ...process.env, RECORD_LOG: s.recordLog, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return daemonFrom(child, live);
}

/**
 * A spawned `ckpt run` as a Daemon: its JSON log lines parsed as they come, stderr kept, and
 * the child in `track` until it exits (each test module kills what it tracks).
 */
export function daemonFrom(child: ChildProcess, track: Set<ChildProcess>): Daemon {
  track.add(child);
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      track.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    lines,
    stderr: () => err,
    exited,
    waitForLog: (pred, timeoutMs = 20_000) => waitFor(() => lines.find(pred), { timeoutMs, message: 'log line' }),
  };
}

/** Wait until the daemon has finished its start-up scan. */
export async function started(d: Daemon): Promise<void> {
  await d.waitForLog((l) => l.msg === 'ckpt running');
}

export function killDaemons(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

/** Run a ckpt CLI command to completion. */
export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return run(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env } });
}

export interface Rec {
  ev: 'start' | 'tick' | 'end' | 'module';
  file: string;
  pid: number;
  t: string;
  size?: number;
  attempt?: string;
  key?: string;
  worker?: string;
  outcome?: string;
}

export function records(s: Setup): Rec[] {
  if (!fs.existsSync(s.recordLog)) return [];
  return fs
    .readFileSync(s.recordLog, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
}

/** Runs of the recorder per file: [start t, last t of that pid] in monotonic ns. */
export function runsByFile(recs: Rec[]): Map<string, { pid: number; start: bigint; last: bigint }[]> {
  const byPid = new Map<number, { file: string; start: bigint; last: bigint }>();
  for (const r of recs) {
    if (r.ev === 'module') continue;
    const t = BigInt(r.t);
    const cur = byPid.get(r.pid);
    if (r.ev === 'start' || !cur) byPid.set(r.pid, { file: r.file, start: t, last: t });
    else cur.last = t;
  }
  const out = new Map<string, { pid: number; start: bigint; last: bigint }[]>();
  for (const [pid, v] of byPid) {
    const list = out.get(v.file) ?? [];
    list.push({ pid, start: v.start, last: v.last });
    out.set(v.file, list);
  }
  return out;
}

/** Pairs of runs of one file that overlapped in time. */
export function overlaps(recs: Rec[]): string[] {
  const bad: string[] = [];
  for (const [file, runs] of runsByFile(recs)) {
    const sorted = [...runs].sort((a, b) => (a.start < b.start ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.start <= sorted[i - 1]!.last) bad.push(`${file}: pid ${sorted[i - 1]!.pid} and ${sorted[i]!.pid}`);
    }
  }
  return bad;
}

export function rows(db: string, sql = 'SELECT * FROM file_checkpoints ORDER BY file_url'): Record<string, unknown>[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    d.close();
  }
}

export function statusOf(db: string, file: string): string | undefined {
  if (!fs.existsSync(db)) return undefined;
  const d = new Database(db, { readonly: true });
  try {
    return (d.prepare('SELECT status FROM file_checkpoints WHERE file_url = ?').get(file) as { status: string } | undefined)?.status;
  } catch {
    return undefined;
  } finally {
    d.close();
  }
}

export function countStatus(db: string, status: string): number {
  if (!fs.existsSync(db)) return 0;
  const d = new Database(db, { readonly: true });
  try {
    return (d.prepare('SELECT count(*) AS n FROM file_checkpoints WHERE status = ?').get(status) as { n: number }).n;
  } catch {
    return 0;
  } finally {
    d.close();
  }
}

let dropCount = 0;

/** Write a file atomically into the inbox (write a dotfile, rename): never seen half-written. */
export function drop(inbox: string, name: string, content: string | Buffer): string {
  const final = path.join(inbox, name);
  // A short dotfile name: the final name may already be near the 255-byte limit.
  const tmp = path.join(path.dirname(final), `.drop-${process.pid}-${dropCount++}`);
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, final);
  return final;
}
