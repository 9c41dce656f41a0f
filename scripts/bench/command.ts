/**
 * Scenario 4: the command handler against the spawn floor.
 *
 *   node --import tsx scripts/bench/command.ts [--full] [--files=N] [--runs=N]
 *
 * N real files as a pending backlog; the real Runner runs the real command handler
 * (["true", "{path}"], concurrency 4: own process group, bounded output capture, timeout,
 * handler pid recorded in the store) on each, and completes it. Against it, interleaved:
 * `xargs -0 -P4 -n1 true` over the same paths, the cheapest way to run a program per file, and
 * the same Runner with Node's spawn in the daemon's own thread (spawnVia 'direct'), which is
 * what the spawn helper (src/run/spawn-helper.ts) has to beat to be worth its process; and
 * Node's own floor: a bare `node` that only spawns `true` four at a time with the options the
 * handler uses (own process group, stdout/stderr piped), timed inside that process.
 * With the native part loaded, the same Runner with handlers started by posix_spawn (the default
 * then) is measured too. Goals: ckpt >= 0.7x xargs; with posix_spawn, >= 1.0x xargs.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { nativeAddon } from '../../src/native/addon.js';
import { createHandler } from '../../src/run/handler.js';
import { backlogDb, discovered, drainBacklog } from './pipeline-parts.js';
import { FULL, argNumber, createFiles, emit, exited, log, median, removeDir, tmpDir, track } from './lib.js';

/** Short: 400 files (spawning is slow on a busy machine: about 50 a second under load 15). */
const N = argNumber('files', FULL ? 2_000 : 400);
const RUNS = argNumber('runs', 3);
const CONCURRENCY = 4;

async function xargs(listFile: string, n: number): Promise<number> {
  const t0 = performance.now();
  const c = track(spawn('xargs', ['-0', '-P', String(CONCURRENCY), '-n', '1', '-a', listFile, 'true'], { stdio: 'ignore' }));
  const code = await exited(c);
  if (code !== 0) throw new Error(`xargs exited ${code}`);
  return (n / (performance.now() - t0)) * 1000;
}

/**
 * Run as `node -e NODE_FLOOR_SOURCE listFile concurrency`: prints files/s of its spawn loop
 * (Node's start-up is left out; xargs's is a millisecond).
 */
const NODE_FLOOR_SOURCE = String.raw`
const { spawn } = require('node:child_process');
const files = require('node:fs').readFileSync(process.argv[1], 'utf8').split('\0').filter(Boolean);
const t0 = performance.now();
let next = 0;
const one = (f) => new Promise((res) => {
  const c = spawn('true', [f], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  c.stdout.resume();
  c.stderr.resume();
  c.on('close', res);
});
const slot = async () => { while (next < files.length) await one(files[next++]); };
Promise.all(Array.from({ length: Number(process.argv[2]) }, slot)).then(() => {
  process.stdout.write(String((files.length / (performance.now() - t0)) * 1000));
});
`;

async function nodeFloor(listFile: string): Promise<number> {
  const c = track(spawn(process.execPath, ['-e', NODE_FLOOR_SOURCE, listFile, String(CONCURRENCY)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  c.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const code = await exited(c);
  if (code !== 0) throw new Error(`node spawn loop exited ${code}`);
  return Number(out);
}

async function main(): Promise<void> {
  const data = tmpDir();
  const root = path.join(data, 'in');
  log(`creating ${N} files and a backlog database`);
  const files = createFiles(root, N);
  const listFile = path.join(data, 'list');
  fs.writeFileSync(listFile, `${files.join('\0')}\0`);
  const template = path.join(data, 'template.db');
  await backlogDb(template, discovered(files));
  const base = { command: ['true', '{path}'], timeoutMs: 600_000, killGraceMs: 5_000, cwd: data } as const;
  const handler = await createHandler({ ...base, spawnVia: 'helper' });
  const direct = await createHandler({ ...base, spawnVia: 'direct' });
  const native = nativeAddon() !== null ? await createHandler({ ...base, spawnVia: 'native' }) : null;
  const drain = async (h: typeof handler): Promise<number> => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    fs.copyFileSync(template, db);
    const res = await drainBacklog({ dbFile: db, root, handler: h, concurrency: CONCURRENCY, logFile: path.join(dir, 'run.log'), workerId: 'bench:cmd' });
    if (res.done !== N) throw new Error(`ckpt settled ${res.done} of ${N}`);
    removeDir(dir);
    return (N / res.ms) * 1000;
  };

  const ck: number[] = [];
  const ckDirect: number[] = [];
  const xa: number[] = [];
  const nf: number[] = [];
  const ckNative: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    if (native !== null) ckNative.push(await drain(native));
    ck.push(await drain(handler));
    xa.push(await xargs(listFile, N));
    ckDirect.push(await drain(direct));
    nf.push(await nodeFloor(listFile));
    log(
      `run ${r + 1}: ckpt ${Math.round(ck[r]!)} files/s; xargs -P4 ${Math.round(xa[r]!)} files/s; ckpt with spawn in its own thread ${Math.round(ckDirect[r]!)} files/s; ` +
        `bare node spawn loop ${Math.round(nf[r]!)} files/s` +
        (native !== null ? `; ckpt with posix_spawn ${Math.round(ckNative[r]!)} files/s` : ''),
    );
  }
  emit({
    id: '4',
    title: 'Command handler `true` against the spawn floor',
    params: { files: N, runs: RUNS, concurrency: CONCURRENCY },
    measures: [
      ...(native !== null
        ? [{ name: 'ckpt Runner + command handler, posix_spawn (native part, the default when loaded)', unit: 'files/s', runs: ckNative, better: 'higher' as const }]
        : []),
      { name: 'ckpt Runner + command handler ["true", "{path}"], spawn helper', unit: 'files/s', runs: ck, better: 'higher' },
      { name: 'xargs -0 -P4 -n1 true', unit: 'files/s', runs: xa, better: 'higher' },
      { name: "ckpt with Node's spawn in the daemon's thread (no spawn helper)", unit: 'files/s', runs: ckDirect, better: 'higher' },
      { name: 'bare node: spawn `true` 4 at a time (own group, piped output), nothing else', unit: 'files/s', runs: nf, better: 'higher' },
    ],
    ratios: [
      { goal: 'ckpt (spawn helper) / xargs -P4 >= 0.7', value: median(ck) / median(xa), target: 0.7, op: '>=', how: 'median / median' },
      ...(native !== null
        ? [{ goal: 'ckpt (posix_spawn) / xargs -P4 >= 1.0', value: median(ckNative) / median(xa), target: 1.0, op: '>=' as const, how: 'median / median' }]
        : []),
    ],
    notes: [
      `The spawn helper against spawning in the daemon's thread: ${(median(ck) / median(ckDirect)).toFixed(2)}x (median / median).`,
      `Node's floor: a bare node spawn loop reaches ${(median(nf) / median(xa)).toFixed(2)}x xargs, and ckpt ${(median(ck) / median(nf)).toFixed(2)}x that loop (median / median).`,
      ...(FULL ? [] : [`Short run: ${N} files (the goal names 2,000; the full run uses 2,000).`]),
    ],
  });
}

await main();
