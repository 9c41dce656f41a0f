/**
 * `ckpt doctor`: one line per check of what can go wrong with the database and what degraded
 * mode leaves behind, and an exit code that says whether a person is needed.
 *
 *   ok    all is well
 *   warn  worth knowing, ckpt copes on its own (a journal waiting to be replayed, a corrupt
 *         file kept aside for inspection, a large -wal)
 *   FAIL  a person is needed: the database is corrupt, on a network file system, not in WAL
 *         mode, a ckpt process is degraded (something holds the database locked), or the
 *         handler cannot be run (ckpt run would refuse to start)
 *
 * Dead files are a warn line with the commands to look at them, and the last line says they
 * wait for a person (the exit code stays 0: nothing is broken).
 *
 * Exit code: 0 when nothing failed, 69 (EX_UNAVAILABLE, the code ckpt uses for "the database
 * cannot be used") when something did. Reads only: it never writes to the database (it opens
 * it read-only) nor to the fallback folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ResolvedConfig } from '../../config/types.js';
import { fileSystemOf, isNetworkFileSystem } from '../../mounts.js';
import { fallbackDirForConfig, inspectFallback, snapshotFile } from '../../store/fallback/inspect.js';
import { JOURNAL_SIZE_LIMIT, openDatabase, type SqliteDatabase } from '../../store/open-database.js';
import { classifySqliteError } from '../../store/sqlite-errors.js';
import { EXIT } from '../exit-codes.js';
import type { Check, Level } from './doctor-check.js';
import { deadFilesCheck, doctorSummary, handlerChecks } from './doctor-handler.js';
import { print, printJson } from '../context.js';

export type { Check, Level } from './doctor-check.js';

export interface DoctorJson {
  database: string | null;
  checks: Check[];
  /** True when at least one check failed: a person is needed. */
  needsPerson: boolean;
  exitCode: number;
}

export async function doctorCommand(config: ResolvedConfig, opts: { json?: boolean } = {}): Promise<number> {
  const db = config.database;
  // node-postgres is loaded only for a PostgreSQL configuration.
  const fallbackDir = fallbackDirForConfig(db, config.fallbackDir);
  const now = Date.now();
  const checks =
    db.kind === 'sqlite'
      ? runChecks(db.path, config.lockTimeoutMs, now, fallbackDir ?? undefined, config.configPath)
      : [
          ...(await (await import('./doctor-postgres.js')).postgresChecks(db, { lockTimeoutMs: config.lockTimeoutMs, leaseMs: config.leaseMs, now, configPath: config.configPath })),
          // Without fallbackDir `ckpt run` refuses to start on PostgreSQL, so nothing to read.
          ...(fallbackDir === null ? [] : fallbackChecks(fallbackDir, now)),
        ];
  checks.push(...(await handlerChecks(config)));
  const needsPerson = checks.some((c) => c.level === 'fail');
  const exitCode = needsPerson ? EXIT.UNAVAILABLE : EXIT.OK;
  if (opts.json) {
    const out: DoctorJson = { database: config.database.kind === 'sqlite' ? config.database.path : null, checks, needsPerson, exitCode };
    printJson(out);
  } else {
    const width = Math.max(...checks.map((c) => c.name.length));
    for (const c of checks) print(`${(c.level === 'fail' ? 'FAIL' : c.level).padEnd(5)} ${c.name.padEnd(width)}  ${c.message}`);
    print(doctorSummary(checks));
  }
  return exitCode;
}

/** Every check of a SQLite ledger, in the order printed. Exported for tests. */
export function runChecks(db: string, lockTimeoutMs: number, now: number, fallbackDir = `${db}.fallback`, configPath = 'ckpt.config.json'): Check[] {
  const fsCheck = fileSystemCheck(path.dirname(db));
  const exists = fs.existsSync(db);
  return [
    fsCheck,
    ...presenceChecks(db, exists),
    ...(exists ? contentChecks(db, lockTimeoutMs, configPath) : []),
    walSizeCheck(db),
    ...fallbackChecks(fallbackDir, now),
    corruptFilesCheck(db),
    snapshotCheck(fallbackDir, now),
  ];
}

function check(name: string, level: Level, message: string): Check {
  return { name, level, message };
}

/** SQLite's WAL needs working locks and shared memory: the database's folder must be on a local disk. */
function fileSystemCheck(dir: string): Check {
  if (!fs.existsSync(dir)) return check('file system', 'fail', `the database folder ${dir} does not exist`);
  const fsType = fileSystemOf(dir).fsType;
  if (isNetworkFileSystem(dir)) return check('file system', 'fail', `${dir} is on ${fsType}, a network file system: WAL locks do not hold there; move the database to a local disk`);
  return check('file system', 'ok', `${dir} is on ${fsType} (local)`);
}

/** Whether the database file is there, and which processes have it open. */
function presenceChecks(db: string, exists: boolean): Check[] {
  const out = [exists ? check('database', 'ok', `${db}, ${mib(fs.statSync(db).size)}`) : check('database', 'warn', `no database at ${db} yet (ckpt creates it at the first run)`)];
  const holders = openBy(db);
  if (holders.length > 0) out.push(check('open by', 'ok', holders.map((h) => `pid ${h.pid} (${h.comm})`).join(', ')));
  else if (exists) out.push(check('open by', 'ok', 'no process has the database open'));
  return out;
}

/** Read-only looks inside the database: journal mode, integrity_check, dead files. */
function contentChecks(db: string, lockTimeoutMs: number, configPath: string): Check[] {
  const out: Check[] = [];
  let conn: SqliteDatabase | undefined;
  try {
    conn = openDatabase(db, { readonly: true, busyTimeoutMs: Math.min(lockTimeoutMs, 2_000), allowNetworkFs: true });
    const mode = String(conn.pragma('journal_mode', { simple: true })).toLowerCase();
    if (mode === 'wal') out.push(check('journal mode', 'ok', 'wal'));
    else out.push(check('journal mode', 'fail', `${mode}: ckpt needs WAL (readers and writers must not block each other); run ckpt once to switch it`));
    const t0 = Date.now();
    const rows = (conn.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
    const ms = Date.now() - t0;
    if (rows.length === 1 && rows[0] === 'ok') out.push(check('integrity', 'ok', `integrity_check ok (${ms} ms)`));
    else out.push(check('integrity', 'fail', `integrity_check: ${rows.slice(0, 3).join('; ')}${rows.length > 3 ? ` (+${rows.length - 3} more)` : ''}; ckpt moves the file aside and salvages it when it next opens it`));
    const hasTable = conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'file_checkpoints'").get() !== undefined;
    if (hasTable) out.push(deadFilesCheck((conn.prepare("SELECT count(*) AS n FROM file_checkpoints WHERE status = 'dead'").get() as { n: number }).n, configPath));
  } catch (err) {
    const cls = classifySqliteError((err as { cause?: unknown }).cause ?? err);
    const msg = (err as Error).message;
    if (cls === 'transient' || /SQLITE_BUSY|locked/.test(msg)) out.push(check('integrity', 'fail', `could not read the database: it is locked by another process (${msg}); find it with the "open by" line`));
    else out.push(check('integrity', 'fail', `the database cannot be read: ${msg}; ckpt moves it aside and salvages it when it next opens it`));
  } finally {
    try {
      conn?.close();
    } catch {
      // ignore
    }
  }
  return out;
}

function walSizeCheck(db: string): Check {
  const walSize = sizeOf(`${db}-wal`);
  if (walSize === null) return check('wal size', 'ok', 'no -wal file (checkpointed and closed)');
  if (walSize > JOURNAL_SIZE_LIMIT) return check('wal size', 'warn', `${mib(walSize)}, above the ${mib(JOURNAL_SIZE_LIMIT)} limit: a reader is holding a transaction open (a sqlite3 shell in BEGIN?); it shrinks once that ends`);
  return check('wal size', 'ok', mib(walSize));
}

function corruptFilesCheck(db: string): Check {
  const aside = corruptFiles(db);
  if (aside.length === 0) return check('corrupt files', 'ok', 'none');
  return check('corrupt files', 'warn', `kept for inspection (ckpt never deletes them): ${aside.map((f) => path.basename(f)).join(', ')}; delete them when no longer needed`);
}

function snapshotCheck(fallbackDir: string, now: number): Check {
  const snapStat = statOf(snapshotFile(fallbackDir));
  if (snapStat) return check('snapshot', 'ok', `${mib(snapStat.size)}, taken ${Math.round((now - snapStat.mtimeMs) / 60_000)} min ago`);
  return check('snapshot', 'ok', 'none yet (a running ckpt takes one every hour)');
}

/** What degraded mode leaves in its folder (SQLite and PostgreSQL alike): modes, journals, markers. */
export function fallbackChecks(fallbackDir: string, now: number): Check[] {
  const checks: Check[] = [];
  const add = (name: string, level: Level, message: string) => checks.push({ name, level, message });
  const view = inspectFallback(fallbackDir, now);
  const live = view.states;
  const degraded = live.filter((s) => s.mode === 'degraded');
  if (live.length === 0) add('mode', 'ok', 'no ckpt process with fallback is running');
  else if (degraded.length === 0) add('mode', 'ok', `normal (${live.map((s) => `${s.workerId} pid ${s.owner.pid}`).join(', ')})`);
  for (const s of degraded) {
    add('mode', 'fail', `${s.workerId} (pid ${s.owner.pid}) degraded since ${iso(s.since)} (${s.kind ?? '?'}): ${s.reason ?? '?'}`);
  }

  if (view.journals.length === 0) add('journals', 'ok', 'none pending');
  for (const j of view.journals) {
    add(
      'journals',
      'warn',
      `${path.basename(j.file)}: ${j.outcomes} outcome(s), ${j.claims} claim(s) not yet in the database; ` +
        (j.ownerAlive ? `its process (pid ${j.owner!.pid}) is degraded and replays it when the database is back` : 'its process is gone: the next ckpt to open the database replays it'),
    );
  }

  const m = view.markers;
  if (m.total === 0) add('markers', 'ok', 'no claim markers');
  else {
    add(
      'markers',
      'warn',
      `${m.total} claim marker(s) (${m.byState.map(([k, v]) => `${v} ${k}`).join(', ')}); ${m.total - m.stale} of live processes, ` +
        `${m.stale} left by processes that are gone (cleared when ckpt next opens the database)`,
    );
  }

  for (const l of view.salvages) {
    add('salvage', 'warn', l.running ? `pid ${l.pid} is salvaging the database right now` : `a salvage by pid ${l.pid} did not finish (process gone); the next ckpt retries it`);
  }
  return checks;
}

/** Processes that have the file open, from /proc/<pid>/fd (Linux; empty elsewhere). */
function openBy(file: string): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return out;
  }
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target === real) {
        let comm = '?';
        try {
          comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          // gone meanwhile
        }
        out.push({ pid: Number(pid), comm });
        break;
      }
    }
  }
  return out;
}

function corruptFiles(db: string): string[] {
  const dir = path.dirname(db);
  const base = `${path.basename(db)}.corrupt-`;
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => n.startsWith(base))
      .sort()
      .map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

function sizeOf(file: string): number | null {
  return statOf(file)?.size ?? null;
}

function statOf(file: string): fs.Stats | null {
  try {
    return fs.statSync(file);
  } catch {
    return null;
  }
}

/** `12.3 KiB` / `4.5 MiB` (shared with validate). */
export function mib(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function iso(ms: number | null): string {
  return ms === null ? '?' : new Date(ms).toISOString();
}
