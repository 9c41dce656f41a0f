#!/usr/bin/env -S node --import tsx
/**
 * The chaos soak (issue 7): N real `ckpt run` daemons on one database and one inbox, a producer
 * dropping files at a steady rate, faults at random, and at the end a check of the guarantee
 * from the database, the handler's own records and the folders (see check.ts).
 *
 *   npm run soak -- --minutes 30            the long one
 *   node --import tsx scripts/soak/run.ts --seconds 60 --no-build
 *   npm run soak -- --sink sqlite --minutes 30   exactly-once rows into a sink (sink-chaos.ts)
 *
 * Prints one summary line on stdout (files, faults of each kind, re-runs, overlaps, lost) and
 * exits 0 when every check passed, 1 on any violation (listed on stderr, with evidence; the work
 * folder is kept for inspection), 64 on a usage error, 69 when something it needs is missing.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { check, type Violation } from './check.js';
import { DaemonPool, type Instance, tail } from './daemons.js';
import { FaultInjector } from './faults.js';
import { type SoakOptions, UsageError, parseOptions } from './options.js';
import { Producer } from './producer.js';
import { Random } from './random.js';
import { runSinkSoak } from './sink-run.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const DEFAULT_CLI = path.join(REPO, 'dist/cli/main.js');
const HANDLER = path.join(HERE, 'handler.pl');

const EXIT_OK = 0;
const EXIT_VIOLATIONS = 1;
const EXIT_USAGE = 64;
const EXIT_UNAVAILABLE = 69;

/** Log messages worth counting: each is the daemon refusing or recovering something. */
const LOG_MARKERS: Record<string, string> = {
  'took over an expired claim': 'takeoverLines',
  'claim was taken over while the handler ran; its outcome is not recorded': 'staleOutcomeDropped',
  'handler succeeded but the claim was taken over; nothing recorded, nothing moved': 'staleCompleteRefused',
  'handler failed but the claim was taken over; nothing recorded': 'staleFailRefused',
  'lease lost (taken over or requeued): stopping the handler': 'leaseLost',
  'handler succeeded but the outcome could not be recorded; the file will run again': 'completeNotRecorded',
  'after-action failed; the file stays where it is': 'afterActionFailed',
  'lease renewal late': 'renewalLate',
};

async function main(): Promise<number> {
  let opts: SoakOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const say = (msg: string): void => {
    if (opts.verbose) process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  };

  const missing = prerequisites(opts);
  if (missing) {
    process.stderr.write(`soak: ${missing}\n`);
    return EXIT_UNAVAILABLE;
  }
  const CLI = opts.cli === undefined ? DEFAULT_CLI : path.resolve(opts.cli);
  if (opts.build) {
    say('npm run build');
    const b = spawnSync('npm', ['run', 'build'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
    if (b.status !== 0) {
      process.stderr.write('soak: npm run build failed\n');
      return EXIT_UNAVAILABLE;
    }
  }
  if (!fs.existsSync(CLI)) {
    process.stderr.write(`soak: ${CLI} does not exist: run npm run build (or drop --no-build)\n`);
    return EXIT_UNAVAILABLE;
  }
  if (opts.sink) return runSinkSoak(opts, CLI);

  // ---- the work folder ----------------------------------------------------------------------
  const work = fs.realpathSync(fs.mkdtempSync(path.join(opts.dir ?? os.tmpdir(), 'ckpt-soak-')));
  const inbox = path.join(work, 'inbox');
  const done = path.join(work, 'done');
  const dead = path.join(work, 'dead');
  const locks = path.join(work, 'locks');
  const records = path.join(work, 'records.tsv');
  const db = path.join(work, 'ckpt.db');
  for (const d of [inbox, done, dead, locks]) fs.mkdirSync(d, { recursive: true });
  const config = path.join(work, 'ckpt.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify(
      {
        database: 'ckpt.db',
        watch: [{ dir: 'inbox' }],
        handler: { command: ['perl', HANDLER, '{path}'], timeoutMs: 60_000, killGraceMs: 1_000 },
        concurrency: opts.concurrency,
        leaseMs: opts.leaseMs,
        stableMs: opts.stableMs,
        rescanMs: opts.rescanMs,
        shutdownGraceMs: opts.shutdownGraceMs,
        // Degraded mode after 2 s of a held lock, well inside the lease (see options.ts).
        lockTimeoutMs: opts.lockTimeoutMs,
        // maxRetries 4: a file that fails once by design still completes after a kill or two.
        retry: { maxRetries: 4, baseDelayMs: 100, maxDelayMs: 1_000 },
        onSuccess: { moveTo: 'done' },
        onDead: { moveTo: 'dead' },
        log: { level: 'info', format: 'json' },
      },
      null,
      2,
    ),
  );
  say(`work folder ${work}; seed ${opts.seed}; faults ${opts.faults.join(',') || 'none'}; ${opts.daemons} daemons; ${opts.rate} files/s for ${opts.durationMs / 1000} s`);

  const violations: Violation[] = [];
  const violation = (kind: string, detail: string): void => {
    violations.push({ kind, detail });
    say(`VIOLATION ${kind}: ${detail.split('\n')[0]}`);
  };
  let phase: 'run' | 'drain' | 'stop' = 'run';
  const rnd = new Random(opts.seed);
  const pool: DaemonPool = new DaemonPool({
    cli: CLI,
    config,
    workDir: work,
    env: { ...process.env, SOAK_RECORDS: records, SOAK_LOCKS: locks },
    onCrash: (i: Instance) => {
      violation('daemon-crash', `${i.workerId} (slot ${i.slot}) exited by itself with ${i.exit?.code ?? i.exit?.signal}; last log lines:\n${tail(i.log, 15)}`);
      if (phase !== 'stop') void pool.start(i.slot).catch((err: unknown) => violation('restart', (err as Error).message));
    },
  });
  const cleanup = (): void => pool.killAll();
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      cleanup();
      process.stderr.write(`soak: ${sig}: daemons killed; work folder kept: ${work}\n`);
      process.exit(130);
    });
  }

  const started = Date.now();
  await Promise.all(Array.from({ length: opts.daemons }, (_, slot) => pool.start(slot)));
  say(`${opts.daemons} daemons running: ${pool.running().map((i) => i.workerId).join(', ')}`);

  const producer = new Producer(inbox, opts.rate, rnd);
  const faults = new FaultInjector({
    kinds: opts.faults,
    everyMs: opts.faultEveryMs,
    leaseMs: opts.leaseMs,
    shutdownGraceMs: opts.shutdownGraceMs,
    lockHoldMs: opts.lockHoldMs,
    database: db,
    pool,
    rnd,
    violation,
    progress: say,
  });
  const runStart = Date.now();
  producer.start();
  faults.start();
  const progress = setInterval(() => say(`${producer.stats.names} files dropped; ${countsText(db)}`), 10_000);
  await new Promise((r) => setTimeout(r, opts.durationMs));

  // ---- drain ----------------------------------------------------------------------------------
  phase = 'drain';
  await producer.stop();
  const runMs = Date.now() - runStart;
  // Faults in flight end early (SIGCONT, COMMIT); a killed or terminated slot is restarted.
  await faults.stop();
  say(`producer stopped after ${Math.round(runMs / 1000)} s (${producer.stats.names} files); draining`);
  for (const e of producer.errors.slice(0, 5)) violation('producer', e);
  const drainStart = Date.now();
  const drained = await drain(db, inbox, producer.stats.names, faults.counts().corrupt > 0, opts, say);
  clearInterval(progress);
  const drainMs = Date.now() - drainStart;
  if (!drained.ok) violation('not-drained', `${drained.why} after ${Math.round(drainMs / 1000)} s; ${countsText(db)}`);

  // ---- stop the daemons: SIGTERM, each must exit 0 ---------------------------------------------
  phase = 'stop';
  const limit = opts.shutdownGraceMs + 15_000;
  for (const { instance: i, exit: ex } of await pool.stopAll(limit)) {
    if (ex === 'hang') {
      violation('term-hang', `${i.workerId} still running ${limit} ms after the final SIGTERM`);
      process.kill(i.pid, 'SIGKILL');
    } else if (ex.code !== 0) {
      violation('term-exit-code', `${i.workerId} exited with ${ex.code ?? ex.signal} after the final SIGTERM; last log lines:\n${tail(i.log, 10)}`);
    }
  }

  // ---- check ----------------------------------------------------------------------------------
  const result = check({
    inbox,
    done,
    dead,
    db,
    records,
    fallbackDir: `${db}.fallback`,
    dropped: producer.dropped,
    faults: faults.done,
    instances: pool.instances,
    stableMs: opts.stableMs,
  });
  violations.push(...result.violations);
  const logCounts = await scanLogs(pool.instances.map((i) => i.log));
  const s = result.stats;
  const fc = faults.counts();
  const reruns = Object.values(s.reruns).reduce((a, b) => a + b, 0) + s.unexplainedReruns;
  const byKind = new Map<string, number>();
  for (const v of violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + (v.detail.startsWith('(more of this kind') ? 0 : 1));
  const summary =
    `soak: ${violations.length === 0 ? 'PASS' : 'FAIL'} ${Math.round(runMs / 1000)}s (+${Math.round(drainMs / 1000)}s drain, ${Math.round((Date.now() - started) / 1000)}s total)` +
    ` daemons=${opts.daemons} rate=${opts.rate}/s files=${s.names} contents=${s.contents} completed=${s.completed} dead=${s.dead}` +
    ` runs=${s.runs} retries=${s.retries}` +
    ` faults: kill=${fc.kill} stop=${fc.stop} term=${fc.term} lock=${fc.lock} corrupt=${fc.corrupt}` +
    ` reruns=${reruns} (kill=${s.reruns.kill} stop=${s.reruns.stop} term=${s.reruns.term} corrupt=${s.reruns.corrupt} unexplained=${s.unexplainedReruns})` +
    ` takeovers=${s.takeovers} refused=${(logCounts.staleCompleteRefused ?? 0) + (logCounts.staleFailRefused ?? 0) + (logCounts.staleOutcomeDropped ?? 0)}` +
    ` overlaps=${s.overlaps} lost=${s.lost} rowsLost=${s.rowsLost} violations=${violations.length}${byKind.size ? ` (${[...byKind].map(([k, n]) => `${k}=${n}`).join(' ')})` : ''}` +
    ` seed=${opts.seed}`;

  if (violations.length > 0) {
    const report = violations.map((v) => `- ${v.kind}: ${v.detail}\n`).join('');
    process.stderr.write(`\nsoak: ${violations.length} violation(s):\n${report}`);
    fs.writeFileSync(path.join(work, 'violations.txt'), `${summary}\n\n${report}`);
  }
  say(`log counts: ${JSON.stringify(logCounts)}`);
  if (s.partialReadsExcused > 0) say(`${s.partialReadsExcused} partial read(s) of slow files whose writer paused longer than stableMs (a loaded machine; not a ckpt fault)`);
  if (s.deadBySharedBudget > 0) say(`${s.deadBySharedBudget} file(s) dead because an earlier content of the same name spent the version's retry budget`);
  if (s.deadByFaults > 0) say(`${s.deadByFaults} file(s) dead because lease expiries spent their retry budget`);
  process.stdout.write(`${summary}\n`);

  process.off('exit', cleanup);
  pool.killAll();
  if (violations.length === 0 && !opts.keep) {
    fs.rmSync(work, { recursive: true, force: true });
  } else {
    process.stderr.write(`soak: work folder kept: ${work} (logs/, records.tsv, ckpt.db)\n`);
  }
  return violations.length === 0 ? EXIT_OK : EXIT_VIOLATIONS;
}

function prerequisites(opts: SoakOptions): string | null {
  const perl = spawnSync('perl', ['-MTime::HiRes=clock_gettime,CLOCK_MONOTONIC', '-e', 'print clock_gettime(CLOCK_MONOTONIC)'], { encoding: 'utf8' });
  if (perl.status !== 0) return `the soak handler needs perl with Time::HiRes (apt-get install perl): ${perl.error?.message ?? perl.stderr}`;
  if (opts.faults.includes('lock')) {
    const sq = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' });
    if (sq.status !== 0) return 'the lock fault needs the sqlite3 shell (apt-get install sqlite3)';
  }
  return null;
}

function countsText(db: string): string {
  let d: Database.Database | null = null;
  try {
    d = new Database(db, { readonly: true, fileMustExist: true });
    const rows = d.prepare('SELECT status, count(*) AS n FROM file_checkpoints GROUP BY status').all() as { status: string; n: number }[];
    return rows.map((r) => `${r.status} ${r.n}`).join(', ') || 'no rows';
  } catch (err) {
    return `database unreadable: ${(err as Error).message}`;
  } finally {
    d?.close();
  }
}

/**
 * Waits until every file dropped has a row, no row is pending/processing/failed, the inbox
 * is empty, and (after the corrupt fault) the database passes quick_check. A file left in the inbox with a settled row (an after-action that never happened)
 * would keep that last condition false forever: once the rows have been settled for a rescan
 * and a stability period and more, waiting longer cannot help, and the checker reports it.
 */
async function drain(db: string, inbox: string, names: number, corrupted: boolean, opts: SoakOptions, say: (m: string) => void): Promise<{ ok: boolean; why: string }> {
  const deadline = Date.now() + opts.drainTimeoutMs;
  const settleMs = opts.rescanMs + opts.stableMs + 3_000;
  let settledSince: number | null = null;
  let lastSay = Date.now();
  let why = '';
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    let rows = 0;
    let open = 0;
    let d: Database.Database | null = null;
    try {
      d = new Database(db, { readonly: true, fileMustExist: true });
      rows = (d.prepare('SELECT count(*) AS n FROM file_checkpoints').get() as { n: number }).n;
      open = (d.prepare("SELECT count(*) AS n FROM file_checkpoints WHERE status IN ('pending', 'processing', 'failed')").get() as { n: number }).n;
      // A corrupt page that no statement has read yet goes unnoticed until a daemon's minute
      // check (quick_check) finds it and salvages the file. A 60-second run with the corrupt
      // fault ended before that (seed 578148285) and the checker found the database malformed.
      const qc = corrupted ? String(d.pragma('quick_check', { simple: true })) : 'ok';
      if (qc !== 'ok') {
        why = `the corrupt page is not found and salvaged yet: quick_check says ${qc.slice(0, 100)}`;
        continue;
      }
    } catch (err) {
      why = `database unreadable: ${(err as Error).message}`;
      continue;
    } finally {
      d?.close();
    }
    const inInbox = countDataFiles(inbox);
    why = `${rows}/${names} files have rows, ${open} not settled, ${inInbox} in the inbox`;
    if (Date.now() - lastSay > 10_000) {
      say(`draining: ${why}`);
      lastSay = Date.now();
    }
    // An empty inbox with nothing open is done even when rows are missing (a corrupt page the
    // salvage could not read takes its rows with it; the checker reports them as row-lost).
    if (open === 0 && inInbox === 0) return { ok: true, why };
    if (rows >= names && open === 0) {
      settledSince ??= Date.now();
      if (Date.now() - settledSince > settleMs) return { ok: true, why };
    } else {
      settledSince = null;
    }
  }
  return { ok: false, why };
}

function countDataFiles(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (!e.name.startsWith('.')) n++;
    }
  };
  walk(dir);
  return n;
}

/** Counts the log lines of interest, and the distinct error-level messages, in every daemon's log. */
async function scanLogs(files: readonly string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const f of files) {
    if (!fs.existsSync(f)) continue;
    const rl = readline.createInterface({ input: fs.createReadStream(f), crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line.includes('"level":"warn"') && !line.includes('"level":"error"') && !line.includes('"level":"fatal"')) continue;
      let msg = '';
      let level = '';
      try {
        const o = JSON.parse(line) as { msg?: unknown; level?: unknown };
        msg = String(o.msg ?? '');
        level = String(o.level);
      } catch {
        continue;
      }
      const k = LOG_MARKERS[msg];
      if (k) counts[k] = (counts[k] ?? 0) + 1;
      if (msg === 'lease renewal late' || msg === 'lease lost (taken over or requeued): stopping the handler') {
        // The worst renewal: least lease left, longest timer delay (a blocked event loop), slowest write.
        const o = JSON.parse(line) as { leftMs?: number; timerLateMs?: number; storeMs?: number };
        if (typeof o.leftMs === 'number') counts.renewalMinLeftMs = Math.min(counts.renewalMinLeftMs ?? Infinity, o.leftMs);
        if (typeof o.timerLateMs === 'number') counts.renewalMaxTimerLateMs = Math.max(counts.renewalMaxTimerLateMs ?? 0, o.timerLateMs);
        if (typeof o.storeMs === 'number') counts.renewalMaxStoreMs = Math.max(counts.renewalMaxStoreMs ?? 0, o.storeMs);
      }
      else if (level === 'error' || level === 'fatal') counts[`error: ${msg.slice(0, 80)}`] = (counts[`error: ${msg.slice(0, 80)}`] ?? 0) + 1;
    }
  }
  return counts;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(70);
  },
);
