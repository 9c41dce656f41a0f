/**
 * Scenario 5: producers are not slowed, and what they drop is in the database at once.
 *
 *   node --import tsx scripts/bench/producer.ts [--full] [--files=N] [--runs=N] [--stable=MS]
 *
 * A producer process writes N files (open, write, close) into a folder nobody watches, then
 * into the inbox of a running `ckpt run` (no-op module handler), interleaved. After the last
 * file is whole we poll the database until all N have a row.
 * Goals: watched time <= 1.5x unwatched; all N in the database within stableMs + 1 s.
 */
import path from 'node:path';
import fs from 'node:fs';
import {
  DbPeek,
  FULL,
  NOOP_HANDLER,
  RssSampler,
  argNumber,
  daemonAvailable,
  daemonStarted,
  emit,
  epochNow,
  log,
  median,
  removeDir,
  runProducer,
  sleep,
  startDaemon,
  tmpDir,
} from './lib.js';

const N = argNumber('files', 10_000);
const RUNS = argNumber('runs', FULL ? 3 : 2);
const STABLE_MS = argNumber('stable', 200);
const CONCURRENCY = argNumber('concurrency', 64);

async function main(): Promise<void> {
  if (!daemonAvailable()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  const unwatched: number[] = [];
  const watched: number[] = [];
  const lag: number[] = [];
  const peaks: number[] = [];
  const notes: string[] = [];
  for (let r = 0; r < RUNS; r++) {
    const plain = tmpDir();
    const u = await runProducer(plain, N);
    unwatched.push(u.ms);
    removeDir(plain);

    const dir = tmpDir();
    const inbox = path.join(dir, 'in');
    fs.mkdirSync(inbox);
    const d = startDaemon(dir, { watchDir: inbox, module: NOOP_HANDLER, stableMs: STABLE_MS, concurrency: CONCURRENCY });
    await daemonStarted(d);
    const rss = new RssSampler(d.pid);
    const w = await runProducer(inbox, N);
    watched.push(w.ms);
    const peek = new DbPeek(d.db);
    let inDbAt = NaN;
    const deadline = performance.now() + 120_000;
    while (performance.now() < deadline) {
      if (peek.count() >= N) {
        inDbAt = epochNow();
        break;
      }
      await sleep(10);
    }
    peek.close();
    if (Number.isNaN(inDbAt)) notes.push(`run ${r + 1}: not all ${N} files reached the database within 120 s`);
    lag.push(inDbAt - w.endEpoch - STABLE_MS);
    rss.stop();
    peaks.push(rss.peakMb);
    await d.stop();
    removeDir(dir);
    log(`run ${r + 1}: unwatched ${Math.round(u.ms)} ms, watched ${Math.round(w.ms)} ms, all in the database ${Math.round(lag[r]!)} ms after the last file + stableMs`);
  }
  emit({
    id: '5',
    title: 'Producers are not slowed by the watcher',
    params: { files: N, runs: RUNS, stableMs: STABLE_MS, concurrency: CONCURRENCY },
    measures: [
      { name: `producer writes ${N} files, folder not watched`, unit: 'ms', runs: unwatched, better: 'lower' },
      { name: `producer writes ${N} files into a watched inbox (daemon running)`, unit: 'ms', runs: watched, better: 'lower' },
      { name: 'last file whole -> all files in the database, minus stableMs', unit: 'ms', runs: lag, better: 'lower' },
      { name: 'daemon peak RSS', unit: 'MB', runs: peaks, better: 'lower' },
    ],
    ratios: [
      { goal: 'watched / unwatched <= 1.5', value: median(watched) / median(unwatched), target: 1.5, op: '<=', how: 'median / median' },
      { goal: 'in the database within stableMs + 1 s (lag <= 1000 ms)', value: median(lag), target: 1000, op: '<=', how: 'median lag, ms' },
    ],
    notes,
  });
}

await main();
