/**
 * Per-file CPU of the no-op pipeline: scenario 1's in-process pipeline (the real Runner,
 * SqliteStore, module handler, completion batcher, pino to a file) over N files, after a
 * warm-up round, loaded from dist/ (`npm run build` first) so that a profile names real lines:
 * tsx's transform puts a whole source file on a line or two.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx scripts/bench/profile-pipeline.ts [--files=20000] [--concurrency=64]
 *   node --import tsx scripts/bench/cpuprofile-summary.ts /tmp/prof/<largest>.cpuprofile <the PROFILE_WINDOW arguments it printed>
 *
 * Without a profiler it still prints the CPU time per file of the measured round (user and
 * system), which is what the before/after comparisons use: alternate `--dist=<a copy of dist/
 * built from the old code>` and the default dist/ in one shell loop.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import type { DiscoveredFile } from '../../src/store/types.js';
import { DISCOVER_BATCH } from './pipeline-parts.js';
import { NOOP_HANDLER, REPO, argNumber, createFiles, log, removeDir, tmpDir } from './lib.js';

const N = argNumber('files', 20_000);
const CONCURRENCY = argNumber('concurrency', 64);
/** --dist=DIR: another build of ckpt (inside the repository, for its node_modules), e.g. the code before a change, to compare. */
const DIST = path.resolve(process.argv.find((a) => a.startsWith('--dist='))?.slice('--dist='.length) ?? path.join(REPO, 'dist'));

const { Runner } = (await import(path.join(DIST, 'run/runner.js'))) as typeof import('../../src/run/runner.js');
const { SqliteStore } = (await import(path.join(DIST, 'store/sqlite-store.js'))) as typeof import('../../src/store/sqlite-store.js');
const { createHandler } = (await import(path.join(DIST, 'run/handler.js'))) as typeof import('../../src/run/handler.js');
const { createLogger } = (await import(path.join(DIST, 'log.js'))) as typeof import('../../src/log.js');
const { fingerprintOf } = (await import(path.join(DIST, 'file-identity.js'))) as typeof import('../../src/file-identity.js');

/** Store calls (each one transaction) and the files they carried, per method, in the measured round. */
const calls = new Map<string, { n: number; items: number }>();
for (const m of ['discover', 'claim', 'complete', 'heartbeat', 'setHandlerPid', 'fail', 'release'] as const) {
  const proto = SqliteStore.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const orig = proto[m]!;
  proto[m] = function (this: unknown, ...a: unknown[]) {
    const c = calls.get(m) ?? { n: 0, items: 0 };
    c.n++;
    c.items += Array.isArray(a[0]) ? a[0].length : typeof a[0] === 'number' ? a[0] : 1;
    calls.set(m, c);
    return orig.apply(this, a);
  };
}

async function pipeline(dir: string, root: string, files: readonly DiscoveredFile[]): Promise<{ rate: number; cpuUs: NodeJS.CpuUsage; t0: bigint; t1: bigint }> {
  const store = new SqliteStore(path.join(dir, 'ckpt.db'), { busyTimeoutMs: 250, lockTimeoutMs: 5_000 });
  const logger = createLogger({ level: 'info', format: 'json', destination: path.join(dir, 'run.log') });
  const handler = await createHandler({ module: NOOP_HANDLER, timeoutMs: 600_000 });
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const runner = new Runner({
    store, handler, workerId: `bench:${process.pid}`, host: 'bench', concurrency: CONCURRENCY, leaseMs: 30_000,
    folders: [{ dir: root, readyMarker: null }], onSuccess: 'keep', onDead: 'keep', logger,
    onOutcome: () => {
      if (++done === files.length) resolveAll();
    },
  });
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  runner.start();
  for (let i = 0; i < files.length; i += DISCOVER_BATCH) {
    const res = await store.discover(files.slice(i, i + DISCOVER_BATCH), Date.now());
    if (res.inserted > 0) runner.wake();
    await tick();
  }
  await all;
  const t1 = process.hrtime.bigint();
  const cpuUs = process.cpuUsage(cpu0);
  await runner.stop(1_000);
  await store.close();
  return { rate: (files.length / Number(t1 - t0)) * 1e9, cpuUs, t0, t1 };
}

const data = tmpDir();
const root = path.join(data, 'in');
const files: DiscoveredFile[] = createFiles(root, N).map((f) => {
  const st = fs.statSync(f);
  return { fileUrl: f, fileType: 'bench', mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) };
});
const warm = tmpDir();
await pipeline(warm, root, files.slice(0, 2_000));
removeDir(warm);
const w = tmpDir();
calls.clear();
const r = await pipeline(w, root, files);
const { user, system } = r.cpuUs;
log(`pipeline ${N} files, concurrency ${CONCURRENCY}: ${Math.round(r.rate)} files/s, CPU ${((user + system) / N).toFixed(1)} us/file (user ${(user / N).toFixed(1)}, system ${(system / N).toFixed(1)})`);
log(`store calls: ${[...calls].map(([m, c]) => `${m} ${c.n} (${(c.items / c.n).toFixed(1)} files each)`).join(', ')}`);
// The profile's timestamps are microseconds of the monotonic clock, as process.hrtime's.
console.log(`PROFILE_WINDOW --window=${r.t0 / 1000n},${r.t1 / 1000n} --files=${N}`);
removeDir(w);
removeDir(data);
