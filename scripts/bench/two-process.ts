/**
 * Scenario 2: two processes draining one database, against one process.
 *
 *   node --import tsx scripts/bench/two-process.ts [--full] [--files=N] [--runs=N]
 *
 * A backlog of N pending files (real files; discovered beforehand) is drained by the real
 * Runner (no-op module handler, concurrency 64 as in scenario 1) in one process, then, on an
 * identical copy of the database, by two processes started together. Interleaved, 3 rounds.
 * Goals: two processes >= 0.9x one process in total; neither gets less than a third.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { backlogDb, discovered } from './pipeline-parts.js';
import { BENCH_DIR, FULL, argNumber, createFiles, emit, exited, log, median, removeDir, tmpDir, track } from './lib.js';

const N = argNumber('files', FULL ? 50_000 : 10_000);
const RUNS = argNumber('runs', 3);
const CONCURRENCY = argNumber('concurrency', 64);

interface WorkerResult {
  done: number;
  ms: number;
  startEpoch: number;
  endEpoch: number;
}

async function drainWith(processes: number, template: string, root: string): Promise<{ rate: number; shares: number[] }> {
  const dir = tmpDir();
  const db = path.join(dir, 'ckpt.db');
  fs.copyFileSync(template, db);
  const kids = Array.from({ length: processes }, (_, i) =>
    track(
      spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'two-process-worker.ts'), db, root, String(CONCURRENCY), `bench:w${i}`, path.join(dir, `w${i}.log`)], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    ),
  );
  const outs = kids.map(() => '');
  const ready = kids.map(
    (k, i) =>
      new Promise<void>((resolve) =>
        k.stdout?.on('data', (d: Buffer) => {
          outs[i] += d.toString();
          if (outs[i]!.includes('ready')) resolve();
        }),
      ),
  );
  await Promise.all(ready);
  for (const k of kids) k.stdin?.write('go\n');
  const codes = await Promise.all(kids.map((k) => exited(k)));
  if (codes.some((c) => c !== 0)) throw new Error(`a worker exited with ${codes.join(', ')}`);
  const res = outs.map((o) => JSON.parse(o.trim().split('\n').pop() as string) as WorkerResult);
  const total = res.reduce((a, r) => a + r.done, 0);
  if (total !== N) throw new Error(`workers settled ${total} files, expected ${N}`);
  const start = Math.min(...res.map((r) => r.startEpoch));
  const end = Math.max(...res.map((r) => r.endEpoch));
  removeDir(dir);
  return { rate: (N / (end - start)) * 1000, shares: res.map((r) => r.done / N) };
}

async function main(): Promise<void> {
  const data = tmpDir();
  const root = path.join(data, 'in');
  log(`creating ${N} files and a backlog database`);
  const files = createFiles(root, N);
  const template = path.join(data, 'template.db');
  await backlogDb(template, discovered(files));

  const one: number[] = [];
  const two: number[] = [];
  const minShare: number[] = [];
  const splits: string[] = [];
  for (let r = 0; r < RUNS; r++) {
    const a = await drainWith(1, template, root);
    one.push(a.rate);
    const b = await drainWith(2, template, root);
    two.push(b.rate);
    minShare.push(Math.min(...b.shares));
    splits.push(b.shares.map((s) => Math.round(s * N)).join('/'));
    log(`run ${r + 1}: one process ${Math.round(a.rate)} files/s; two ${Math.round(b.rate)} files/s, split ${splits[splits.length - 1]}`);
  }
  emit({
    id: '2',
    title: 'Two processes on one database',
    params: { files: N, runs: RUNS, concurrency: CONCURRENCY },
    measures: [
      { name: 'one process drains the backlog', unit: 'files/s', runs: one, better: 'higher' },
      { name: 'two processes together (first start to last finish)', unit: 'files/s', runs: two, better: 'higher' },
      { name: 'smaller share of the two', unit: 'of files', runs: minShare, better: 'higher', note: `splits: ${splits.join(', ')}` },
    ],
    ratios: [
      { goal: 'two processes / one >= 0.9', value: median(two) / median(one), target: 0.9, op: '>=', how: 'median / median' },
      { goal: 'smaller share >= 1/3', value: Math.min(...minShare), target: 1 / 3, op: '>=', how: 'worst run' },
    ],
    notes: ['Both processes start on a "go" sent once both have the store open and the handler loaded; each stops when a claim finds nothing and nothing runs.'],
  });
}

await main();
