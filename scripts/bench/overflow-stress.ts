/**
 * Stress check: no file is held forever after the inotify queue overflows.
 *
 *   node --import tsx scripts/bench/overflow-stress.ts [--rounds=N] [--files=N] [--wait=S] [--nice=N]
 *     [--stop=MS --run=MS] [--queue=N]
 *
 * Each round: `ckpt run` (native part on, so readiness by kernel events) at nice 10 watches an
 * inbox; a producer writes N files (open, write, close: four inotify events each) as fast as it
 * can, far more than max_queued_events, so the queue overflows while the daemon is behind and
 * refills before the overflow record is read. Then we wait until every file has a row, or
 * `wait` seconds. Prints, per round, whether the daemon logged an overflow and the files that
 * never reached the database.
 *
 * Measured on the shared 2-core box (load 2-4), `--rounds=5 --stop=200 --run=20 --wait=20`,
 * old and new builds alternated: before the incomplete-window rule (kernel-readiness.ts) 3 of
 * 10 rounds left one file out for good (each written and closed, held as "still open for
 * writing"); after it 0 of 20. Without --stop, at nice 10 alone, the old build lost 7 files in
 * 6 rounds while the producer ran fast (170-370 ms for 10,000 files) and none once it slowed
 * to 1.5-2.4 s (the daemon kept up): hence --stop.
 *
 * --queue=N (root only): fs.inotify.max_queued_events is N while the daemon creates its inotify
 * instance (the kernel reads it then), restored as soon as the daemon is running. System-wide
 * meanwhile: keep it short, never use it inside the test suite.
 */
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import {
  DbPeek,
  NOOP_HANDLER,
  argNumber,
  daemonAvailable,
  daemonStarted,
  log,
  removeDir,
  runProducer,
  sleep,
  startDaemon,
  tmpDir,
} from './lib.js';

const ROUNDS = argNumber('rounds', 5);
const N = argNumber('files', 10_000);
const WAIT_S = argNumber('wait', 30);
const QUEUE = argNumber('queue', 0);
const STOP_MS = argNumber('stop', 0);
const RUN_MS = argNumber('run', 20);
process.env.BENCH_DAEMON_NICE ??= String(argNumber('nice', 10));

const SYSCTL = '/proc/sys/fs/inotify/max_queued_events';

/** Starts the daemon with max_queued_events at `queue` (0: as it is), restoring it at once. */
async function started(dir: string, inbox: string, queue: number) {
  const before = fs.readFileSync(SYSCTL, 'utf8').trim();
  if (queue > 0) fs.writeFileSync(SYSCTL, String(queue));
  try {
    const d = startDaemon(dir, { watchDir: inbox, module: NOOP_HANDLER, stableMs: 200, concurrency: 64 }, [], { CKPT_NATIVE: '1' });
    await daemonStarted(d);
    return d;
  } finally {
    if (queue > 0) fs.writeFileSync(SYSCTL, before);
  }
}

/**
 * --stop=MS: while the producer runs, the daemon is stopped (SIGSTOP) for MS, then runs for
 * --run MS, over and over: a daemon starved of CPU on a busy box, whatever this box's load.
 * Each time it runs it reads a buffer or two, and the producer refills the queue behind the
 * overflow record before it is read.
 */
async function starved<T>(pid: number, producing: Promise<T>): Promise<T> {
  let done = false;
  void producing.finally(() => (done = true));
  try {
    while (!done) {
      process.kill(pid, 'SIGSTOP');
      await sleep(STOP_MS);
      process.kill(pid, 'SIGCONT');
      await sleep(RUN_MS);
    }
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  return producing;
}

/** Names in `inbox` without a row. */
function missing(db: string, inbox: string): string[] {
  const conn = new Database(db, { readonly: true });
  try {
    const rows = conn.prepare('SELECT file_url FROM file_checkpoints').all() as Array<{ file_url: string }>;
    const seen = new Set(rows.map((r) => path.basename(r.file_url)));
    return fs.readdirSync(inbox).filter((n) => !n.startsWith('.') && !seen.has(n)); // .ckpt-ledger is ckpt's own
  } finally {
    conn.close();
  }
}

async function main(): Promise<void> {
  if (!daemonAvailable()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  let lost = 0;
  let overflowed = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const dir = tmpDir();
    const inbox = path.join(dir, 'in');
    fs.mkdirSync(inbox);
    const d = await started(dir, inbox, QUEUE);
    const producing = runProducer(inbox, N);
    const p = STOP_MS > 0 ? await starved(d.pid, producing) : await producing;
    const peek = new DbPeek(d.db);
    const deadline = performance.now() + WAIT_S * 1000;
    while (performance.now() < deadline && peek.count() < N) await sleep(50);
    const inDb = peek.count();
    peek.close();
    const overflow = d.logLines().some((l) => typeof l.msg === 'string' && l.msg.includes('overflowed the inotify queue'));
    const gone = inDb < N ? missing(d.db, inbox) : [];
    await d.stop();
    removeDir(dir);
    lost += gone.length;
    if (overflow) overflowed++;
    const never = gone.length > 0 ? `; never reached it: ${gone.join(', ')}` : '';
    log(`round ${r + 1}: producer ${Math.round(p.ms)} ms, overflow ${overflow ? 'yes' : 'no'}, ${inDb}/${N} in the database after the wait${never}`);
  }
  const starving = STOP_MS > 0 ? `, stopped ${STOP_MS} ms / running ${RUN_MS} ms` : '';
  const how = `queue ${QUEUE || 'as set'}, nice ${process.env.BENCH_DAEMON_NICE}${starving}`;
  process.stdout.write(`${ROUNDS} rounds of ${N} files (${how}): ${overflowed} with an overflow, `);
  process.stdout.write(`${lost} files never in the database within ${WAIT_S} s\n`);
  if (lost > 0) process.exitCode = 1;
}

await main();
