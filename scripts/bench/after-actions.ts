/**
 * Scenario 9: what durable after-actions cost. `ckpt run --once` (the real CLI from dist/) over
 * N files with onSuccess keep, delete and move, interleaved; files/s (wall, start-up included)
 * and syncs per file (fsync + fdatasync, counted by `strace -c --seccomp-bpf`, which stops the
 * daemon only at those two calls: a few microseconds against the milliseconds a sync takes).
 *
 *   node --import tsx scripts/bench/after-actions.ts [--full] [--files=N] [--runs=N] [--baseline=DIR]
 *   BENCH_BASELINE=DIR BENCH_BASELINE_NAME=before npm run bench -- --only=9
 *
 * --baseline=DIR (or BENCH_BASELINE): another checkout of ckpt with its dist/ built (say, from
 * before a change); its daemon runs in the same rounds, interleaved with this one's, so both
 * see the same load.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, FULL, NOOP_HANDLER, argNumber, createFiles, emit, exited, log, median, removeDir, tmpDir, track, type Measure, type Ratio } from './lib.js';

const N = argNumber('files', FULL ? 10_000 : 2_000);
const RUNS = argNumber('runs', 3);
const CONCURRENCY = argNumber('concurrency', 64);
const BASELINE = process.argv.find((a) => a.startsWith('--baseline='))?.slice('--baseline='.length) ?? process.env.BENCH_BASELINE;
const BASELINE_NAME = process.env.BENCH_BASELINE_NAME ?? (BASELINE ? path.basename(path.resolve(BASELINE)) : '');
const ACTIONS = ['keep', 'delete', 'move'] as const;
type Action = (typeof ACTIONS)[number];

const hasStrace = spawnSync('strace', ['-V']).status === 0;

interface Run {
  rate: number;
  syncs: number | null;
}

/** One `ckpt run --once` over N fresh files; syncs counted when strace is there. */
async function runOnce(cli: string, action: Action): Promise<Run> {
  const dir = tmpDir('ckpt-bench-after-');
  const inbox = path.join(dir, 'in');
  const done = path.join(dir, 'done');
  createFiles(inbox, N);
  fs.mkdirSync(done);
  const onSuccess = action === 'move' ? { moveTo: done } : action;
  const cfg = { database: path.join(dir, 'ckpt.db'), watch: [{ dir: inbox, poll: false }], handler: { module: NOOP_HANDLER }, stableMs: 100, concurrency: CONCURRENCY, onSuccess, log: { level: 'info', format: 'json' } };
  const cfgFile = path.join(dir, 'ckpt.config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const counts = path.join(dir, 'syscalls.txt');
  const node = [process.execPath, cli, 'run', '--once', '--config', cfgFile];
  const argv = hasStrace ? ['strace', '-f', '--seccomp-bpf', '-c', '-e', 'trace=fsync,fdatasync', '-o', counts, ...node] : node;
  const out = fs.openSync(path.join(dir, 'daemon.log'), 'w');
  const t0 = performance.now();
  const child = track(spawn(argv[0]!, argv.slice(1), { cwd: dir, stdio: ['ignore', out, out] }));
  fs.closeSync(out);
  const code = await exited(child);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`run --once (${action}) exited ${code}: ${fs.readFileSync(path.join(dir, 'daemon.log'), 'utf8').slice(-500)}`);
  const syncs = hasStrace ? syncCalls(fs.readFileSync(counts, 'utf8')) / N : null;
  removeDir(dir);
  return { rate: (N / ms) * 1000, syncs };
}

/** fsync + fdatasync calls in a `strace -c` summary (its "calls" column). */
function syncCalls(summary: string): number {
  let n = 0;
  for (const line of summary.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const name = cols.at(-1);
    if (name === 'fsync' || name === 'fdatasync') n += Number(cols[3]);
  }
  return n;
}

async function main(): Promise<void> {
  const trees: { name: string; cli: string }[] = [{ name: 'this checkout', cli: CLI }];
  if (BASELINE) trees.push({ name: `baseline (${BASELINE_NAME})`, cli: path.join(path.resolve(BASELINE), 'dist/cli/main.js') });
  const rates = new Map<string, number[]>();
  const syncs = new Map<string, number[]>();
  for (let r = 0; r < RUNS; r++) {
    for (const t of trees) {
      for (const a of ACTIONS) {
        const x = await runOnce(t.cli, a);
        const key = `${t.name}|${a}`;
        rates.set(key, [...(rates.get(key) ?? []), x.rate]);
        if (x.syncs !== null) syncs.set(key, [...(syncs.get(key) ?? []), x.syncs]);
        log(`run ${r + 1}: ${t.name}, onSuccess ${a}: ${Math.round(x.rate)} files/s, ${x.syncs?.toFixed(2) ?? '?'} syncs per file`);
      }
    }
  }
  const measures: Measure[] = [];
  for (const t of trees) {
    for (const a of ACTIONS) {
      const key = `${t.name}|${a}`;
      measures.push({ name: `${t.name}: run --once, onSuccess ${a}`, unit: 'files/s', runs: rates.get(key)!, better: 'higher' });
      if (syncs.has(key)) measures.push({ name: `${t.name}: syncs per file, onSuccess ${a}`, unit: 'syncs/file', runs: syncs.get(key)!, better: 'lower' });
    }
  }
  const rate = (t: string, a: Action) => median(rates.get(`${t}|${a}`) ?? []);
  const me = trees[0]!.name;
  // What the durable order costs is this checkout against the baseline, action by action (keep
  // against delete also measures the after-action's own work, which both versions do).
  const ratios: Ratio[] = [];
  if (BASELINE) {
    const base = trees[1]!.name;
    for (const a of ACTIONS) ratios.push({ goal: `${a}: this / baseline files/s >= 0.5`, value: rate(me, a) / rate(base, a), target: 0.5, op: '>=', how: 'median / median' });
  }
  emit({
    id: '9',
    title: 'After-actions made durable: keep, delete and move, files/s and syncs per file',
    params: { files: N, runs: RUNS, concurrency: CONCURRENCY, stableMs: 100, baseline: BASELINE ? BASELINE_NAME : 'none' },
    measures,
    ratios,
    notes: [
      hasStrace ? 'syncs counted with `strace -f --seccomp-bpf -c -e trace=fsync,fdatasync` around every run (all runs alike).' : 'strace is not installed: syncs per file were not counted.',
      'With keep nothing is synced per file: a completion lost to a power cut only means the file runs again. With delete or move, each completion batch syncs the -wal once, and each file costs a sync of its folder (and, for a move, of the destination folder): see docs/power-loss.md.',
    ],
  });
}

await main();
