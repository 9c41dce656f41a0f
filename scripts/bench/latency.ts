/**
 * Scenario 7: latency at a steady 200 files/s.
 *
 *   node --import tsx scripts/bench/latency.ts [--full] [--seconds=N] [--rate=N] [--stable=MS]
 *
 * `ckpt run` watches an inbox with a module handler that records when it starts on each file;
 * a producer process writes files on an absolute schedule of `rate` a second and records when
 * each was whole. Latency = handler start - file whole, per file, over every file.
 * Goals: p50 < stableMs + 50 ms, p99 < stableMs + 250 ms.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  FULL,
  RssSampler,
  STAMP_HANDLER,
  StampsTail,
  argNumber,
  daemonAvailable,
  daemonStarted,
  emit,
  log,
  percentile,
  runProducer,
  sleep,
  startDaemon,
  tmpDir,
} from './lib.js';

const SECONDS = argNumber('seconds', FULL ? 60 : 10);
const RATE = argNumber('rate', 200);
const STABLE_MS = argNumber('stable', 200);
const CONCURRENCY = argNumber('concurrency', 64);

async function main(): Promise<void> {
  if (!daemonAvailable()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  const n = SECONDS * RATE;
  const dir = tmpDir();
  const inbox = path.join(dir, 'in');
  fs.mkdirSync(inbox);
  const stampsFile = path.join(dir, 'stamps');
  const dropsFile = path.join(dir, 'drops');
  const d = startDaemon(dir, { watchDir: inbox, module: STAMP_HANDLER, stableMs: STABLE_MS, concurrency: CONCURRENCY }, [], { BENCH_STAMPS: stampsFile });
  await daemonStarted(d);
  const rss = new RssSampler(d.pid, 500);
  log(`producing ${n} files at ${RATE}/s`);
  const prod = await runProducer(inbox, n, { rate: RATE, dropsFile });
  const tail = new StampsTail(stampsFile);
  const until = performance.now() + 60_000;
  while (tail.stamps.size < n && performance.now() < until) {
    await sleep(50);
    tail.poll();
  }
  rss.stop();
  await d.stop();
  const lat: number[] = [];
  let missing = 0;
  for (const line of fs.readFileSync(dropsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const i = line.indexOf(' ');
    const s = tail.stamps.get(line.slice(i + 1));
    if (s === undefined) missing++;
    else lat.push(s - Number(line.slice(0, i)));
  }
  const p50 = percentile(lat, 50);
  const p99 = percentile(lat, 99);
  log(`p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms over ${lat.length} files`);
  const notes: string[] = [];
  if (missing > 0) notes.push(`${missing} files had not reached their handler 60 s after the producer finished`);
  if (prod.late > 0) notes.push(`the producer was more than 5 ms behind its schedule for ${prod.late} of ${n} files (a busy machine)`);
  emit({
    id: '7',
    title: `Latency at a steady ${RATE} files/s`,
    params: { seconds: SECONDS, rate: RATE, files: n, stableMs: STABLE_MS, concurrency: CONCURRENCY },
    measures: [
      { name: 'file whole -> handler started, p50', unit: 'ms', runs: [p50], better: 'lower' },
      { name: 'file whole -> handler started, p99', unit: 'ms', runs: [p99], better: 'lower' },
      { name: 'file whole -> handler started, max', unit: 'ms', runs: [Math.max(...lat)], better: 'lower' },
      { name: 'daemon peak RSS', unit: 'MB', runs: [rss.peakMb], better: 'lower' },
    ],
    ratios: [
      { goal: `p50 < stableMs + 50 (${STABLE_MS + 50} ms)`, value: p50, target: STABLE_MS + 50, op: '<', how: `p50 over ${lat.length} files, ms` },
      { goal: `p99 < stableMs + 250 (${STABLE_MS + 250} ms)`, value: p99, target: STABLE_MS + 250, op: '<', how: `p99 over ${lat.length} files, ms` },
    ],
    notes,
  });
}

await main();
