/**
 * Claim + complete throughput, PostgreSQL against SQLite on the same machine, with 1, 2 and 4
 * worker processes, batches of 64 (claim 64, complete the 64 in one call, again).
 *
 *   npx tsx scripts/bench/pg-claim-complete.ts           # short: 5,000 files, 3 runs
 *   npx tsx scripts/bench/pg-claim-complete.ts --full    # 20,000 files, 5 runs
 *   options: --files=N --runs=N --batch=N
 *   --write: also rewrite scripts/bench/pg-results.md, the section run.ts puts into BENCHMARKS.md
 *
 * PostgreSQL runs in a throwaway cluster started here (test/helpers/postgres.ts) with its
 * crash safety ON (fsync, full_page_writes). Two commit modes are measured:
 *   - synchronous_commit=off: what SQLite's WAL with synchronous=NORMAL gives (a power cut may
 *     lose the last commits, never corrupts): the like-for-like comparison;
 *   - synchronous_commit=on: PostgreSQL's default, one WAL flush per commit.
 * Worker processes start, connect and prepare before the clock starts; the time is from "go"
 * to the last worker's last completion. Scenarios are interleaved run by run, so background
 * load on this shared 2-core machine spreads over all of them; figures are medians with min-max.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { CheckpointStore, DiscoveredFile } from '../../src/store/types.js';
import { startPgCluster } from '../../test/helpers/postgres.js';
import { PG_RESULTS_FILE, writePgSection } from './pg-results.js';
import { FULL, REPO, argNumber, emit, fmt, loadAverage, log, median, sqliteVersion, tmpDir, track, type Measure } from './lib.js';

const FILES = argNumber('files', FULL ? 20_000 : 5_000);
const RUNS = argNumber('runs', FULL ? 5 : 3);
const BATCH = argNumber('batch', 64);
const WORKER = path.join(REPO, 'scripts/bench/pg-claim-complete-worker.ts');
const WRITE = process.argv.includes('--write');

interface Scenario {
  name: string;
  kind: 'sqlite' | 'postgres';
  procs: number;
  syncCommit?: 'on' | 'off';
}

const scenarios: Scenario[] = [
  ...[1, 2, 4].map((procs) => ({ name: `SQLite WAL, ${procs} process${procs > 1 ? 'es' : ''}`, kind: 'sqlite' as const, procs })),
  ...[1, 2, 4].map((procs) => ({ name: `PostgreSQL sync_commit=off, ${procs} process${procs > 1 ? 'es' : ''}`, kind: 'postgres' as const, procs, syncCommit: 'off' as const })),
  ...[1, 4].map((procs) => ({ name: `PostgreSQL sync_commit=on, ${procs} process${procs > 1 ? 'es' : ''}`, kind: 'postgres' as const, procs, syncCommit: 'on' as const })),
];

const files: DiscoveredFile[] = Array.from({ length: FILES }, (_, i) => ({
  fileUrl: `/bench/in/f${i}.csv`,
  fileType: 'csv',
  mtimeMs: 1_700_000_000_000 + i,
  size: 100,
  fingerprint: `100:${1_700_000_000_000 + i}:1:${i}`,
}));

async function fill(store: CheckpointStore): Promise<void> {
  const now = Date.now() - 1000;
  for (let i = 0; i < files.length; i += 512) await store.discover(files.slice(i, i + 512), now);
}

/** Start the workers, wait until all are connected, start the clock, return the wall time in ms. */
async function race(s: Scenario, target: string, url: string): Promise<number> {
  const env = { ...process.env, CKPT_PG_URL: url, ...(s.syncCommit ? { PGOPTIONS: `-c synchronous_commit=${s.syncCommit}` } : {}) };
  const kids = Array.from({ length: s.procs }, (_, i) =>
    track(spawn(process.execPath, ['--import', 'tsx', WORKER, s.kind, target, `bench-${i}`, String(BATCH)], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'inherit'] })),
  );
  const lines = kids.map((k) => createInterface({ input: k.stdout! }));
  const next = (i: number) => new Promise<string>((resolve, reject) => {
    lines[i]!.once('line', resolve);
    kids[i]!.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
  await Promise.all(kids.map((_, i) => next(i)));
  const dones = kids.map((_, i) => next(i));
  const go = Date.now();
  for (const k of kids) k.stdin!.end('go\n');
  const results = (await Promise.all(dones)).map((l) => l.split(' '));
  const total = results.reduce((a, r) => a + Number(r[1]), 0);
  if (total !== FILES) throw new Error(`${s.name}: ${total} of ${FILES} files completed`);
  return Math.max(...results.map((r) => Number(r[2]))) - go;
}

const startedAt = Date.now();
const loadStart = loadAverage();
const cluster = await startPgCluster({ durable: true });
if (typeof cluster === 'string') throw new Error(`cannot start PostgreSQL: ${cluster}`);
try {
  const pgVersion = String((await cluster.sql('SHOW server_version')).rows[0]?.server_version ?? '?');
  log(`files=${FILES} runs=${RUNS} batch=${BATCH}; PostgreSQL ${pgVersion}, SQLite ${sqliteVersion()}; load ${loadAverage()}`);
  const times = new Map<string, number[]>(scenarios.map((s) => [s.name, []]));
  let n = 0;
  for (let run = 1; run <= RUNS; run++) {
    for (const s of scenarios) {
      let target: string;
      let store: CheckpointStore;
      if (s.kind === 'sqlite') {
        target = path.join(tmpDir(), 'bench.db');
        store = new SqliteStore(target);
      } else {
        target = `bench_${++n}`;
        store = await PostgresStore.connect({ url: cluster.url(), schema: target });
      }
      await fill(store);
      await store.close();
      const ms = await race(s, target, cluster.url());
      times.get(s.name)!.push(ms);
      log(`run ${run}: ${s.name}: ${ms} ms (${fmt((FILES / ms) * 1000)} files/s); load ${loadAverage()}`);
      if (s.kind === 'postgres') await cluster.sql(`DROP SCHEMA ${target} CASCADE`);
    }
  }
  const rate = (name: string) => median(times.get(name)!.map((ms) => (FILES / ms) * 1000));
  const measures: Measure[] = scenarios.map((s) => ({
    name: `claim+complete, ${s.name}`,
    unit: 'files/s',
    runs: times.get(s.name)!.map((ms) => (FILES / ms) * 1000),
    better: 'higher',
  }));
  const result = {
    id: 'pg-claim-complete',
    title: 'Claim + complete throughput: PostgreSQL vs SQLite, 1/2/4 processes, batches of 64',
    params: { files: FILES, runs: RUNS, batch: BATCH, postgres: pgVersion, sqlite: sqliteVersion() },
    measures,
    ratios: [],
    notes: [
      `PostgreSQL (sync_commit=off) / SQLite, 1 process: ${fmt(rate(scenarios[3]!.name) / rate(scenarios[0]!.name))}; 4 processes: ${fmt(rate(scenarios[5]!.name) / rate(scenarios[2]!.name))}`,
      `PostgreSQL 4 processes / 1 process (sync_commit=off): ${fmt(rate(scenarios[5]!.name) / rate(scenarios[3]!.name))}; SQLite: ${fmt(rate(scenarios[2]!.name) / rate(scenarios[0]!.name))}`,
      'PostgreSQL on the same 2-core machine as the workers (loopback TCP): its server processes compete with the workers for the 2 cores.',
      `load average at the end: ${loadAverage()} (a shared machine: other work ran meanwhile)`,
    ],
  };
  emit(result);
  if (WRITE) {
    const args = process.argv.slice(2).filter((a) => a !== '--write');
    writePgSection(
      { ...result, size: FULL ? 'full' : 'short', elapsedS: (Date.now() - startedAt) / 1000 },
      { at: new Date(startedAt).toISOString(), loadStart, loadEnd: loadAverage(), command: ['npx tsx scripts/bench/pg-claim-complete.ts', ...args].join(' ') },
    );
    log(`wrote ${PG_RESULTS_FILE}`);
  }
} finally {
  await cluster.destroy();
}
process.exit(0);
