/**
 * Scenario 9: drop-to-handler latency when readiness comes from kernel events.
 *
 *   node --import tsx scripts/bench/kernel-readiness.ts [--full] [--seconds=N] [--rate=N] [--rounds=N]
 *
 * `ckpt run` with the default stableMs (2,000 ms) and the stamp handler; a producer writes files
 * on an absolute schedule of `rate` a second, either written and closed in the folder or written
 * beside it and renamed in. Latency = handler start - file whole (close or rename), per file.
 * Side by side, alternated round by round: the native part on (IN_CLOSE_WRITE / IN_MOVED_TO)
 * and CKPT_NATIVE=0 (today's stability timer, for reference).
 * Goals (native part on, each delivery): p50 < 20 ms, p99 < 50 ms.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  FULL,
  STAMP_HANDLER,
  StampsTail,
  argNumber,
  cpuMsOf,
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

const SECONDS = argNumber('seconds', FULL ? 30 : 5);
const RATE = argNumber('rate', 200);
const ROUNDS = argNumber('rounds', FULL ? 3 : 2);
const STABLE_MS = 2_000;

type Variant = { name: string; mode: 'write' | 'rename'; native: boolean };
const VARIANTS: Variant[] = [
  { name: 'written and closed, native part on', mode: 'write', native: true },
  { name: 'renamed into place, native part on', mode: 'rename', native: true },
  { name: 'written and closed, CKPT_NATIVE=0 (stability timer)', mode: 'write', native: false },
];

async function once(v: Variant): Promise<{ lat: number[]; missing: number; late: number; cpuUsPerFile: number }> {
  const n = SECONDS * RATE;
  const dir = tmpDir();
  const inbox = path.join(dir, 'in');
  fs.mkdirSync(inbox);
  const stampsFile = path.join(dir, 'stamps');
  const dropsFile = path.join(dir, 'drops');
  const env = { BENCH_STAMPS: stampsFile, ...(v.native ? {} : { CKPT_NATIVE: '0' }) };
  const d = startDaemon(dir, { watchDir: inbox, module: STAMP_HANDLER, stableMs: STABLE_MS, concurrency: 64 }, [], env);
  await daemonStarted(d);
  const cpu0 = cpuMsOf(d.pid);
  const prod = await runProducer(inbox, n, { rate: RATE, dropsFile, mode: v.mode });
  const tail = new StampsTail(stampsFile);
  const until = performance.now() + 30_000;
  while (tail.stamps.size < n && performance.now() < until) {
    await sleep(50);
    tail.poll();
  }
  // The daemon's CPU for the files (its idle timers over the wait add a little).
  const cpuUsPerFile = ((cpuMsOf(d.pid) - cpu0) * 1000) / n;
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
  return { lat, missing, late: prod.late, cpuUsPerFile };
}

async function main(): Promise<void> {
  if (!daemonAvailable()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  const all = VARIANTS.map(() => ({ lat: [] as number[], missing: 0, late: 0, cpu: [] as number[] }));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, v] of VARIANTS.entries()) {
      const o = await once(v);
      const a = all[i]!;
      a.lat.push(...o.lat);
      a.missing += o.missing;
      a.late += o.late;
      a.cpu.push(o.cpuUsPerFile);
      log(`round ${r + 1}, ${v.name}: p50 ${percentile(o.lat, 50).toFixed(1)} ms, p99 ${percentile(o.lat, 99).toFixed(1)} ms over ${o.lat.length} files`);
    }
  }
  const p = (i: number, q: number): number => percentile(all[i]!.lat, q);
  const notes: string[] = [];
  for (const [i, v] of VARIANTS.entries()) {
    if (all[i]!.missing > 0) notes.push(`${v.name}: ${all[i]!.missing} files had not reached their handler 30 s after the producer finished`);
    if (all[i]!.late > 0) notes.push(`${v.name}: the producer was more than 5 ms behind its schedule for ${all[i]!.late} files (a busy machine)`);
  }
  emit({
    id: '10',
    title: `Readiness from kernel events: latency at ${RATE} files/s, stableMs ${STABLE_MS}`,
    params: { seconds: SECONDS, rate: RATE, rounds: ROUNDS, stableMs: STABLE_MS },
    measures: VARIANTS.flatMap((v, i) => [
      { name: `${v.name}: file whole -> handler started, p50`, unit: 'ms', runs: [p(i, 50)], better: 'lower' as const },
      { name: `${v.name}: file whole -> handler started, p99`, unit: 'ms', runs: [p(i, 99)], better: 'lower' as const },
      { name: `${v.name}: daemon CPU per file`, unit: 'us', runs: all[i]!.cpu, better: 'lower' as const },
    ]),
    ratios: [
      { goal: 'written and closed: p50 < 20 ms', value: p(0, 50), target: 20, op: '<', how: `p50 over ${all[0]!.lat.length} files, ms` },
      { goal: 'written and closed: p99 < 50 ms', value: p(0, 99), target: 50, op: '<', how: `p99 over ${all[0]!.lat.length} files, ms` },
      { goal: 'renamed into place: p50 < 20 ms', value: p(1, 50), target: 20, op: '<', how: `p50 over ${all[1]!.lat.length} files, ms` },
      { goal: 'renamed into place: p99 < 50 ms', value: p(1, 99), target: 50, op: '<', how: `p99 over ${all[1]!.lat.length} files, ms` },
    ],
    notes,
  });
}

await main();
