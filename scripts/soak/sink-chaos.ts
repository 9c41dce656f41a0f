/**
 * The sink chaos run: three real `ckpt run` daemons on one ledger and one inbox, a module
 * handler (sink-handler.mjs) loading each CSV's rows into a sink database (SQLite file or
 * PostgreSQL) through SqliteSink/PostgresSink.once(), a SIGKILL every 1-2 s and SIGSTOPs past
 * the lease. Some files are slow to write, so kills land inside the sink transaction.
 *
 * At the end every row of every file must be in the sink exactly once: the rows read back are
 * compared with the rows dropped (count, per-row duplicates and misses, and a SHA-256 over the
 * sorted rows), while the handler's own records show files that ran more than once. With
 * `bypass` the handler inserts without the helper, and the same check must find duplicates.
 *
 * Used by test/chaos/sink.test.ts (short) and by `npm run soak -- --sink sqlite|postgres` (long).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { DaemonPool, type Instance, tail } from './daemons.js';
import { FaultInjector } from './faults.js';
import { Random } from './random.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SINK_HANDLER = path.join(HERE, 'sink-handler.mjs');

export interface SinkChaosOptions {
  sink: 'sqlite' | 'postgres';
  /** PostgreSQL: the sink database's URL (the caller starts the server). */
  pgUrl?: string;
  /** Plain inserts instead of the helper: the check must then find duplicates. */
  bypass: boolean;
  cli: string;
  /** How long files are dropped and faults injected. */
  durationMs: number;
  /** Files dropped per second. */
  rate: number;
  /** Mean time between two SIGKILLs (each 0.5x-1.5x of it). */
  killEveryMs: number;
  /** Time between two SIGSTOPs (the first after a third of it). */
  stopEveryMs: number;
  leaseMs: number;
  /** How long a *-slow.csv file's rows take to write. */
  slowMs: number;
  drainTimeoutMs: number;
  seed: number;
  /** Parent of the work folder (default the OS temp folder); the folder is kept on failure. */
  dir?: string;
  keep?: boolean;
  progress?: (msg: string) => void;
}

export interface SinkChaosResult {
  ok: boolean;
  problems: string[];
  files: number;
  rowsDropped: number;
  rowsInSink: number;
  duplicatedRows: number;
  missingRows: number;
  checksumMatches: boolean;
  /** Handler calls in all, and files the handler ran more than once. */
  runs: number;
  filesRunMoreThanOnce: number;
  /** Runs that found the key already there and wrote nothing. */
  alreadyApplied: number;
  /** Daemons' log lines: a worker's outcome dropped because its claim was taken over. */
  lostOutcomes: number;
  kills: number;
  stops: number;
  completed: number;
  dead: number;
  workDir: string;
  seconds: number;
}

/** The sink's rows table: one row per CSV line. */
const ROWS_TABLE = 'CREATE TABLE IF NOT EXISTS rows (file TEXT NOT NULL, line INTEGER NOT NULL, value BIGINT NOT NULL)';

export async function runSinkChaos(o: SinkChaosOptions): Promise<SinkChaosResult> {
  const say = o.progress ?? (() => undefined);
  const started = Date.now();
  const work = fs.realpathSync(fs.mkdtempSync(path.join(o.dir ?? os.tmpdir(), 'ckpt-sink-chaos-')));
  const inbox = path.join(work, 'inbox');
  fs.mkdirSync(inbox);
  const records = path.join(work, 'records.jsonl');
  const ledgerDb = path.join(work, 'ckpt.db');
  const target = o.sink === 'sqlite' ? path.join(work, 'sink.db') : o.pgUrl;
  if (!target) throw new Error('sink postgres needs pgUrl');
  await createRowsTable(o.sink, target);
  const config = writeConfig(work, o.leaseMs);

  const problems: string[] = [];
  const rnd = new Random(o.seed);
  let stopping = false;
  const pool: DaemonPool = new DaemonPool({
    cli: o.cli,
    config,
    workDir: work,
    env: { ...process.env, SINK_KIND: o.sink, SINK_TARGET: target, SINK_RECORDS: records, SINK_BYPASS: o.bypass ? '1' : '0', SINK_SLOW_MS: String(o.slowMs) },
    onCrash: (i: Instance) => {
      problems.push(`daemon ${i.workerId} exited by itself (${i.exit?.code ?? i.exit?.signal}): ${tail(i.log, 10)}`);
      if (!stopping) void pool.start(i.slot).catch((err: unknown) => problems.push(`restart: ${(err as Error).message}`));
    },
  });
  try {
    await Promise.all([0, 1, 2].map((slot) => pool.start(slot)));
    const { dropped, kills, stops } = await dropUnderFaults(o, { inbox, records, ledgerDb, pool, rnd, problems, say });
    say(`${dropped.size} files dropped, ${kills} kills, ${stops} stops; draining`);
    const ledger = await drain(ledgerDb, dropped.size, o.drainTimeoutMs);
    if (!ledger.ok) problems.push(`not drained in ${o.drainTimeoutMs / 1000} s: ${ledger.why}`);
    stopping = true;
    await stopDaemons(pool, problems);

    const cmp = compareRows(dropped, await readSinkRows(o.sink, target));
    const recs = readRecords(records);
    if (!o.bypass && (cmp.duplicated > 0 || cmp.missing > 0 || !cmp.checksumMatches)) {
      problems.push(`sink rows: ${cmp.duplicated} duplicated, ${cmp.missing} missing, checksum ${cmp.checksumMatches ? 'matches' : 'differs'}; e.g. ${cmp.examples.join('; ')}`);
    }
    if (ledger.dead > 0) problems.push(`${ledger.dead} file(s) dead in the ledger`);
    return {
      ok: problems.length === 0,
      problems,
      files: dropped.size,
      rowsDropped: cmp.expected,
      rowsInSink: cmp.inSink,
      duplicatedRows: cmp.duplicated,
      missingRows: cmp.missing,
      checksumMatches: cmp.checksumMatches,
      runs: recs.runs,
      filesRunMoreThanOnce: recs.filesRunMoreThanOnce,
      alreadyApplied: recs.already,
      lostOutcomes: pool.instances.reduce((a, i) => a + countInLog(i.log, 'claim was taken over while the handler ran'), 0),
      kills,
      stops,
      completed: ledger.completed,
      dead: ledger.dead,
      workDir: work,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    stopping = true;
    pool.killAll();
    if (!o.keep && problems.length === 0) fs.rmSync(work, { recursive: true, force: true });
  }
}

function writeConfig(work: string, leaseMs: number): string {
  const config = path.join(work, 'ckpt.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      database: 'ckpt.db',
      watch: [{ dir: 'inbox' }],
      handler: { module: SINK_HANDLER },
      concurrency: 2,
      leaseMs,
      stableMs: 200,
      rescanMs: 2_000,
      shutdownGraceMs: 2_000,
      // Generous: every kill and every stop spends one retry of the files it interrupted.
      retry: { maxRetries: 30, baseDelayMs: 100, maxDelayMs: 1_000 },
      log: { level: 'info', format: 'json' },
    }),
  );
  return config;
}

interface Phase {
  inbox: string;
  records: string;
  ledgerDb: string;
  pool: DaemonPool;
  rnd: Random;
  problems: string[];
  say: (m: string) => void;
}

/** Drops CSVs at the rate for the duration, with SIGKILLs (the soak's injector) and SIGSTOPs. */
async function dropUnderFaults(o: SinkChaosOptions, p: Phase): Promise<{ dropped: Map<string, string[]>; kills: number; stops: number }> {
  const kills = new FaultInjector({
    kinds: ['kill'],
    everyMs: o.killEveryMs,
    leaseMs: o.leaseMs,
    shutdownGraceMs: 2_000,
    lockHoldMs: [0, 0],
    database: p.ledgerDb,
    pool: p.pool,
    rnd: p.rnd,
    violation: (kind, detail) => p.problems.push(`${kind}: ${detail}`),
    progress: p.say,
  });
  const dropped = new Map<string, string[]>();
  const stopping: Promise<void>[] = [];
  kills.start();
  const t0 = Date.now();
  let nextStop = t0 + o.stopEveryMs / 3;
  for (let n = 0; Date.now() - t0 < o.durationMs; n++) {
    dropCsv(p.inbox, n, p.rnd, dropped);
    if (Date.now() >= nextStop) {
      nextStop = Date.now() + o.stopEveryMs;
      stopping.push(stopPastLease(p.pool, p.records, o.leaseMs, p.rnd, p.say));
    }
    await new Promise((r) => setTimeout(r, 1000 / o.rate));
  }
  await kills.stop();
  await Promise.all(stopping);
  return { dropped, kills: kills.counts().kill, stops: stopping.length };
}

async function createRowsTable(kind: 'sqlite' | 'postgres', target: string): Promise<void> {
  if (kind === 'sqlite') {
    const db = new Database(target);
    db.pragma('journal_mode = WAL');
    db.exec(ROWS_TABLE);
    db.close();
    return;
  }
  const c = new pg.Client({ connectionString: target });
  await c.connect();
  try {
    await c.query('DROP TABLE IF EXISTS rows');
    await c.query('DROP TABLE IF EXISTS ckpt_applied');
    await c.query(ROWS_TABLE);
  } finally {
    await c.end();
  }
}

/** A CSV of 20-80 rows, atomically (dotfile, rename); about 30% are slow to load. */
function dropCsv(inbox: string, n: number, rnd: Random, dropped: Map<string, string[]>): void {
  const name = `f${String(n).padStart(5, '0')}${rnd.chance(0.3) ? '-slow' : ''}.csv`;
  const rows: string[] = [];
  for (let i = 0, len = rnd.int(20, 80); i < len; i++) rows.push(`${name},${i},${rnd.int(0, 1_000_000_000)}`);
  const tmp = path.join(inbox, `.${name}.tmp`);
  fs.writeFileSync(tmp, `file,line,value\n${rows.join('\n')}\n`);
  fs.renameSync(tmp, path.join(inbox, name));
  dropped.set(name, rows);
}

/**
 * SIGSTOP a daemon that is inside a handler run, for the lease plus 1-2 s: its claim is taken
 * over, and when it continues its run is the late worker.
 */
async function stopPastLease(pool: DaemonPool, records: string, leaseMs: number, rnd: Random, say: (m: string) => void): Promise<void> {
  const running = pool.running();
  if (running.length < 2) return;
  const open = openRunPids(records);
  const busy = running.filter((i) => open.has(i.pid));
  const i = rnd.pick(busy.length > 0 ? busy : running);
  const ms = leaseMs + rnd.int(1_000, 2_000);
  i.state = 'stopped';
  process.kill(i.pid, 'SIGSTOP');
  say(`SIGSTOP ${i.workerId} for ${ms} ms (${busy.length > 0 ? 'inside a run' : 'idle'})`);
  await new Promise((r) => setTimeout(r, ms));
  try {
    process.kill(i.pid, 'SIGCONT');
  } catch {
    // killed meanwhile
  }
  if (i.state === 'stopped') i.state = 'running';
}

function openRunPids(records: string): Set<number> {
  const open = new Map<string, number>();
  for (const r of parseRecords(records)) {
    const k = `${r.pid}:${r.file}`;
    if (r.ev === 'run') open.set(k, r.pid);
    else open.delete(k);
  }
  return new Set(open.values());
}

interface Rec {
  ev: 'run' | 'applied' | 'already';
  file: string;
  attempt: number;
  pid: number;
}

function parseRecords(file: string): Rec[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
}

function readRecords(file: string): { runs: number; filesRunMoreThanOnce: number; already: number } {
  const perFile = new Map<string, number>();
  let already = 0;
  let runs = 0;
  for (const r of parseRecords(file)) {
    if (r.ev === 'run') {
      runs++;
      perFile.set(r.file, (perFile.get(r.file) ?? 0) + 1);
    } else if (r.ev === 'already') already++;
  }
  return { runs, filesRunMoreThanOnce: [...perFile.values()].filter((c) => c > 1).length, already };
}

async function drain(db: string, files: number, timeoutMs: number): Promise<{ ok: boolean; why: string; completed: number; dead: number }> {
  const deadline = Date.now() + timeoutMs;
  let last = { ok: false, why: 'no ledger yet', completed: 0, dead: 0 };
  while (Date.now() < deadline) {
    try {
      const d = new Database(db, { readonly: true, fileMustExist: true });
      try {
        const by = new Map((d.prepare('SELECT status, count(*) AS n FROM file_checkpoints GROUP BY status').all() as { status: string; n: number }[]).map((r) => [r.status, r.n]));
        const completed = by.get('completed') ?? 0;
        const dead = by.get('dead') ?? 0;
        last = { ok: completed + dead === files, why: `${completed} completed, ${dead} dead of ${files}: ${JSON.stringify(Object.fromEntries(by))}`, completed, dead };
      } finally {
        d.close();
      }
      if (last.ok) return last;
    } catch (err) {
      last.why = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}

async function stopDaemons(pool: DaemonPool, problems: string[]): Promise<void> {
  for (const { instance, exit } of await pool.stopAll(20_000)) {
    if (exit === 'hang') problems.push(`${instance.workerId} still running 20 s after SIGTERM`);
  }
}

async function readSinkRows(kind: 'sqlite' | 'postgres', target: string): Promise<string[]> {
  if (kind === 'sqlite') {
    const d = new Database(target, { readonly: true });
    try {
      return (d.prepare('SELECT file, line, value FROM rows').raw().all() as [string, number, number][]).map((r) => r.join(','));
    } finally {
      d.close();
    }
  }
  const c = new pg.Client({ connectionString: target });
  await c.connect();
  try {
    const r = await c.query<{ file: string; line: number; value: string }>('SELECT file, line, value FROM rows');
    return r.rows.map((x) => `${x.file},${x.line},${x.value}`);
  } finally {
    await c.end();
  }
}

/** Rows dropped against rows in the sink, as multisets; and SHA-256 over each side sorted. */
function compareRows(
  dropped: Map<string, string[]>,
  inSink: string[],
): { expected: number; inSink: number; duplicated: number; missing: number; checksumMatches: boolean; examples: string[] } {
  const want = [...dropped.values()].flat();
  const have = new Map<string, number>();
  for (const r of inSink) have.set(r, (have.get(r) ?? 0) + 1);
  let duplicated = 0;
  let missing = 0;
  const examples: string[] = [];
  for (const r of want) {
    const c = have.get(r) ?? 0;
    if (c === 0) missing++;
    if (c > 1) duplicated += c - 1;
    if (c !== 1 && examples.length < 5) examples.push(`${r} x${c}`);
  }
  const sum = (rows: string[]) => createHash('sha256').update([...rows].sort().join('\n')).digest('hex');
  return { expected: want.length, inSink: inSink.length, duplicated, missing, checksumMatches: sum(want) === sum(inSink), examples };
}

function countInLog(file: string, needle: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split(needle).length - 1;
  } catch {
    return 0;
  }
}

/** Without the helper, finding duplicates is the expected result (the check can see a failure). */
function verdict(o: SinkChaosOptions, r: SinkChaosResult): string {
  if (o.bypass) return r.duplicatedRows > 0 ? 'DUPLICATES-FOUND' : 'NO-DUPLICATES-FOUND';
  return r.ok ? 'PASS' : 'FAIL';
}

/** One line for docs and the test output (the seed is printed apart: docs quote the line). */
export function resultLine(o: SinkChaosOptions, r: SinkChaosResult): string {
  return (
    `sink-chaos: ${verdict(o, r)} sink=${o.sink}${o.bypass ? ' (helper bypassed)' : ''} ${r.seconds}s files=${r.files} rows=${r.rowsDropped}` +
    ` inSink=${r.rowsInSink} duplicated=${r.duplicatedRows} missing=${r.missingRows} checksum=${r.checksumMatches ? 'match' : 'differs'}` +
    ` runs=${r.runs} filesRunMoreThanOnce=${r.filesRunMoreThanOnce} alreadyApplied=${r.alreadyApplied} lostOutcomes=${r.lostOutcomes}` +
    ` kills=${r.kills} stops=${r.stops} completed=${r.completed} dead=${r.dead}`
  );
}
