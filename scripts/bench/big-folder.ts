/**
 * Scenario 6: a big folder. N files are already there when `ckpt run` starts; once every one
 * of them is completed, new files are dropped one at a time.
 *
 *   node --import tsx scripts/bench/big-folder.ts [--full] [--files=N] [--samples=N] [--stable=MS]
 *
 * Goals: a new file reaches its handler within stableMs + 300 ms (judged on the p90 of the
 * samples), the daemon's RSS stays under 250 MB (peak, the whole run), no inotify limit is
 * hit (no ENOSPC in the log; the watches it holds are reported against max_user_watches).
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  DbPeek,
  FULL,
  RssSampler,
  STAMP_HANDLER,
  StampsTail,
  argNumber,
  createFiles,
  daemonAvailable,
  daemonStarted,
  emit,
  epochNow,
  inotifyWatchesOf,
  log,
  median,
  percentile,
  sleep,
  startDaemon,
  tmpDir,
} from './lib.js';

/** The short run stops at 10k files (creating and processing 100k takes minutes here). */
const N = argNumber('files', FULL ? 100_000 : 10_000);
const SAMPLES = argNumber('samples', FULL ? 20 : 10);
const STABLE_MS = argNumber('stable', 200);
/** As in scenario 1: a fast module handler runs with many slots, so the backlog of present files clears sooner. */
const CONCURRENCY = argNumber('concurrency', 64);

function maxUserWatches(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8').trim());
  } catch {
    return NaN;
  }
}

async function main(): Promise<void> {
  if (!daemonAvailable()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  const notes: string[] = [];
  const dir = tmpDir();
  const inbox = path.join(dir, 'in');
  log(`creating ${N} files`);
  createFiles(inbox, N, 'old');
  const stampsFile = path.join(dir, 'stamps');
  const tail = new StampsTail(stampsFile);
  const t0 = performance.now();
  const d = startDaemon(dir, { watchDir: inbox, module: STAMP_HANDLER, stableMs: STABLE_MS, concurrency: CONCURRENCY }, [], { BENCH_STAMPS: stampsFile });
  const rss = new RssSampler(d.pid, 250);
  await daemonStarted(d, 600_000);
  const startMs = performance.now() - t0;
  log(`daemon started (start-up scan done) after ${Math.round(startMs)} ms; rss ${Math.round(rss.lastMb)} MB`);
  const peek = new DbPeek(d.db);
  const deadline = performance.now() + 900_000;
  let lastLog = performance.now();
  while (peek.count("WHERE status = 'completed'") < N) {
    if (performance.now() > deadline) throw new Error(`not all ${N} present files completed within 15 minutes`);
    if (d.child.exitCode !== null) throw new Error(`daemon exited (${d.child.exitCode})`);
    await sleep(250);
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log(`  ${peek.count("WHERE status = 'completed'")} of ${N} completed; rss ${Math.round(rss.lastMb)} MB`);
    }
  }
  peek.close();
  const allDoneMs = performance.now() - t0;
  const watches = inotifyWatchesOf(d.pid);
  log(`all ${N} present files completed after ${Math.round(allDoneMs)} ms; ${watches} inotify watches; rss ${Math.round(rss.lastMb)} MB`);

  const lat: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const p = path.join(inbox, `new-${i}.csv`);
    fs.writeFileSync(p, 'id,value\n1,x\n');
    const dropped = epochNow();
    const until = performance.now() + 30_000;
    while (!tail.stamps.has(p) && performance.now() < until) {
      await sleep(5);
      tail.poll();
    }
    const s = tail.stamps.get(p);
    if (s === undefined) notes.push(`new-${i}.csv did not reach its handler within 30 s`);
    else lat.push(s - dropped);
    await sleep(100);
  }
  rss.stop();
  const lines = d.logLines();
  const enospc = lines.filter((l) => JSON.stringify(l).includes('ENOSPC')).length;
  const errors = lines.filter((l) => l.level === 'error' || l.level === 'fatal').length;
  await d.stop();
  const limit = maxUserWatches();
  if (enospc > 0) notes.push(`${enospc} log lines mention ENOSPC (inotify watches ran out)`);
  if (errors > 0) notes.push(`${errors} error lines in the daemon log`);
  notes.push(`start-up: "ckpt running" after ${Math.round(startMs)} ms, all ${N} present files completed after ${Math.round(allDoneMs)} ms`);
  notes.push(`inotify watches held by the daemon: ${watches} (max_user_watches ${limit}, shared by every process of the user)`);
  if (!FULL) notes.push(`Short run: ${N} files present (the goal names 100,000; the full run uses 100,000).`);
  emit({
    id: '6',
    title: 'Big folder: new files while many are present',
    params: { present: N, samples: SAMPLES, stableMs: STABLE_MS, concurrency: CONCURRENCY },
    measures: [
      { name: 'new file dropped -> handler started', unit: 'ms', runs: lat, better: 'lower', note: `p50 ${Math.round(median(lat))}, p90 ${Math.round(percentile(lat, 90))}, max ${Math.round(Math.max(...lat))}` },
      { name: 'daemon peak RSS (whole run)', unit: 'MB', runs: [rss.peakMb], better: 'lower' },
      { name: 'start-up: spawn -> all present files completed', unit: 'ms', runs: [allDoneMs], better: 'lower' },
      { name: 'inotify watches held', unit: 'watches', runs: [watches], better: 'lower' },
    ],
    ratios: [
      { goal: `new file -> handler <= stableMs + 300 (${STABLE_MS + 300} ms)`, value: lat.length ? percentile(lat, 90) : null, target: STABLE_MS + 300, op: '<=', how: 'p90 of samples, ms' },
      { goal: 'daemon RSS < 250 MB', value: rss.peakMb, target: 250, op: '<', how: 'peak VmHWM, MB' },
      { goal: 'no inotify limit hit (ENOSPC lines = 0)', value: enospc, target: 0, op: '<=', how: 'count of ENOSPC log lines' },
    ],
    notes,
  });
}

await main();
