/**
 * Kernel close/rename events into Node, two ways, side by side (alternated), same files:
 * the native part's inotify (src/native/inotify.ts) and inotify-tools' `inotifywait -m` as a
 * helper process whose output lines are read. Measures event latency (close in this process
 * -> event seen in this process), and the CPU inotifywait itself used. The producer writes in
 * this process, 20 files then a 5 ms pause, so a latency includes waiting for that pause.
 *
 *   node --import tsx scripts/bench/inotify-alternatives.ts [--files=N] [--rounds=N]
 *
 * Prints a small table; docs/native.md quotes it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { nativeAddon } from '../../src/native/addon.js';
import { IN, Inotify } from '../../src/native/inotify.js';
import { argNumber, percentile, tmpDir } from './lib.js';

const N = argNumber('files', 2000);
const ROUNDS = argNumber('rounds', 3);

async function produce(dir: string, seen: Map<string, number>, closed: Map<string, number>): Promise<void> {
  for (let i = 0; i < N; i++) {
    const p = path.join(dir, `f${i}.csv`);
    fs.writeFileSync(p, 'id,value\n1,x\n');
    closed.set(p, performance.now());
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5)); // about 2,000 files/s, events flow meanwhile
  }
  const until = performance.now() + 10_000;
  while (seen.size < N && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
}

async function viaNative(): Promise<{ lat: number[]; cpuUsPerEvent: number }> {
  const addon = nativeAddon();
  if (addon === null) throw new Error('native part not loaded');
  const dir = tmpDir();
  const seen = new Map<string, number>();
  const ino = new Inotify(addon, (evs) => {
    const t = performance.now();
    for (const e of evs ?? []) if ((e.mask & (IN.CLOSE_WRITE | IN.MOVED_TO)) !== 0) seen.set(path.join(dir, e.name), t);
  });
  ino.add(dir, IN.CLOSE_WRITE | IN.MOVED_TO);
  const closed = new Map<string, number>();
  const c0 = process.cpuUsage();
  await produce(dir, seen, closed);
  const c = process.cpuUsage(c0);
  ino.close();
  // The producer's writes are in this process's CPU too: subtract a run with no watch.
  return { lat: [...closed].map(([p, t]) => (seen.get(p) ?? NaN) - t).filter(Number.isFinite), cpuUsPerEvent: (c.user + c.system) / N };
}

async function viaInotifywait(): Promise<{ lat: number[]; cpuUsPerEvent: number; childCpuUsPerEvent: number }> {
  const dir = tmpDir();
  const seen = new Map<string, number>();
  const child = spawn('inotifywait', ['-m', '-q', '-e', 'close_write,moved_to', '--format', '%w%f', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s: string) => {
    const t = performance.now();
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      seen.set(buf.slice(0, nl), t);
      buf = buf.slice(nl + 1);
    }
  });
  await new Promise((r) => setTimeout(r, 300)); // inotifywait sets its watch after it starts
  const closed = new Map<string, number>();
  const c0 = process.cpuUsage();
  await produce(dir, seen, closed);
  const c = process.cpuUsage(c0);
  const stat = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  child.kill();
  return {
    lat: [...closed].map(([p, t]) => (seen.get(p) ?? NaN) - t).filter(Number.isFinite),
    cpuUsPerEvent: (c.user + c.system) / N,
    childCpuUsPerEvent: (ticks * 10_000) / N,
  };
}

async function bare(): Promise<number> {
  const dir = tmpDir();
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    fs.writeFileSync(path.join(dir, `f${i}.csv`), 'id,value\n1,x\n');
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N;
}

const rows: string[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const base = await bare();
  const a = await viaNative();
  const b = await viaInotifywait();
  rows.push(
    `round ${r + 1}: native p50 ${percentile(a.lat, 50).toFixed(2)} ms p99 ${percentile(a.lat, 99).toFixed(2)} ms, ` +
      `| inotifywait p50 ${percentile(b.lat, 50).toFixed(2)} ms p99 ${percentile(b.lat, 99).toFixed(2)} ms, ` +
      `${b.childCpuUsPerEvent.toFixed(1)} us CPU per event in inotifywait (${a.lat.length}/${b.lat.length} of ${N} seen; node side not separable from the producer under load ${base >= 0 ? 'here' : ''})`,
  );
  console.log(rows[rows.length - 1]);
}
