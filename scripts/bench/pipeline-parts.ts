/**
 * The pieces of scenario 1 (and of 2 and 8, which reuse the in-process pipeline): ckpt's real
 * Runner over the real SqliteStore, the raw better-sqlite3 loop it is held against, and the
 * peer queue plainjob. liteque runs in its own folder (see liteque/bench.mjs).
 */
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { better, defineQueue, defineWorker } from 'plainjob';
import { createLogger } from '../../src/log.js';
import { createHandler, type Handler } from '../../src/run/handler.js';
import { Runner } from '../../src/run/runner.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { DiscoveredFile } from '../../src/store/types.js';
import { fingerprintOf } from '../../src/file-identity.js';
import { NOOP_HANDLER } from './lib.js';

/** Files per store.discover call: the watcher's default batch (src/watch/watcher-options.ts batchSize 512). */
export const DISCOVER_BATCH = 512;

/** What the watcher would hand over for these files (their real stats). */
export function discovered(files: readonly string[], fileType = 'bench'): DiscoveredFile[] {
  return files.map((f) => {
    const st = fs.statSync(f);
    return { fileUrl: f, fileType, mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) };
  });
}

export interface PipelineOptions {
  dir: string;
  /** The watched folder the files are in (for the after-action's root). */
  root: string;
  files: readonly DiscoveredFile[];
  concurrency: number;
  logLevel?: 'info' | 'warn';
  /** Discover everything first, then start the runner (scenario 2's backlog). */
  discoverFirst?: boolean;
}

/**
 * ckpt's pipeline in one process, as the daemon wires it: batches of 512 go to
 * store.discover, the runner is woken, claims, runs the module handler (a no-op ES module
 * loaded by the real module-handler code) and completes through the completion batcher.
 * Logging at info to a file, as the daemon logs to stdout. Returns files/s from the first
 * discover to the last completion.
 */
export async function ckptPipeline(o: PipelineOptions): Promise<{ rate: number; ms: number }> {
  const n = o.files.length;
  const store = new SqliteStore(path.join(o.dir, 'ckpt.db'), { busyTimeoutMs: 250, lockTimeoutMs: 5_000 });
  const logger = createLogger({ level: o.logLevel ?? 'info', format: 'json', destination: path.join(o.dir, 'run.log') });
  const handler = await createHandler({ module: NOOP_HANDLER, timeoutMs: 600_000 });
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const runner = new Runner({
    store,
    handler,
    workerId: `bench:${process.pid}`,
    host: 'bench',
    concurrency: o.concurrency,
    leaseMs: 30_000,
    folders: [{ dir: o.root, readyMarker: null }],
    onSuccess: 'keep',
    onDead: 'keep',
    logger,
    onOutcome: () => {
      if (++done === n) resolveAll();
    },
  });
  if (o.discoverFirst) {
    for (let i = 0; i < n; i += DISCOVER_BATCH) await store.discover(o.files.slice(i, i + DISCOVER_BATCH), Date.now());
  }
  const t0 = performance.now();
  runner.start();
  if (!o.discoverFirst) {
    for (let i = 0; i < n; i += DISCOVER_BATCH) {
      const res = await store.discover(o.files.slice(i, i + DISCOVER_BATCH), Date.now());
      if (res.inserted > 0) runner.wake();
      // The watcher hands batches from its own event-loop turns, not in one synchronous burst.
      await tick();
    }
  }
  await all;
  const ms = performance.now() - t0;
  await runner.stop(1_000);
  await store.close();
  return { rate: (n / ms) * 1000, ms };
}

/**
 * The practical limit of one process: better-sqlite3 12, the same pragmas as ckpt (WAL,
 * synchronous=NORMAL), a minimal queue table, and for every 64 paths: one transaction
 * inserting them, one claiming 64 (UPDATE ... RETURNING on a partial index), one completing them.
 */
export function rawBatched(dbFile: string, paths: readonly string[], batch = 64): { rate: number; ms: number } {
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE q (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, status TEXT NOT NULL DEFAULT 'pending',
             token TEXT, started_at TEXT, completed_at TEXT);
           CREATE INDEX q_ready ON q (id) WHERE status = 'pending';`);
  const ins = db.prepare('INSERT INTO q (path) VALUES (?) ON CONFLICT (path) DO NOTHING');
  const claim = db.prepare(
    `UPDATE q SET status = 'processing', token = ?, started_at = ?
      WHERE id IN (SELECT id FROM q WHERE status = 'pending' ORDER BY id LIMIT ?) RETURNING id, path`,
  );
  const complete = db.prepare(`UPDATE q SET status = 'completed', completed_at = ? WHERE id = ? AND token = ? AND status = 'processing'`);
  const insertTx = db.transaction((ps: readonly string[]) => {
    for (const p of ps) ins.run(p);
  });
  const claimTx = db.transaction((token: string, now: string) => claim.all(token, now, batch) as { id: number; path: string }[]);
  const completeTx = db.transaction((rows: { id: number }[], token: string, now: string) => {
    for (const r of rows) complete.run(now, r.id, token);
  });
  const t0 = performance.now();
  let done = 0;
  for (let i = 0; i < paths.length; i += batch) {
    insertTx.immediate(paths.slice(i, i + batch));
    const token = `t${i}`;
    const rows = claimTx.immediate(token, new Date().toISOString());
    completeTx.immediate(rows, token, new Date().toISOString());
    done += rows.length;
  }
  const ms = performance.now() - t0;
  db.close();
  if (done !== paths.length) throw new Error(`raw loop completed ${done} of ${paths.length}`);
  return { rate: (paths.length / ms) * 1000, ms };
}

/**
 * plainjob 0.0.14 with what its README and its own benchmark do: `addMany` for the jobs, a
 * silent logger (its default is console), one worker. Its documented `processAll` is not
 * exported by 0.0.14, so the end is detected with `onCompleted`.
 */
export async function plainjob(dbFile: string, paths: readonly string[]): Promise<{ rate: number; ms: number }> {
  const silent = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };
  const db = new Database(dbFile);
  const queue = defineQueue({ connection: better(db), logger: silent });
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const worker = defineWorker('bench', async () => undefined, {
    queue,
    logger: silent,
    onCompleted: () => {
      if (++done === paths.length) resolveAll();
    },
  });
  const t0 = performance.now();
  queue.addMany(
    'bench',
    paths.map((p) => ({ path: p })),
  );
  void worker.start();
  await all;
  const ms = performance.now() - t0;
  await worker.stop();
  queue.close();
  db.close();
  return { rate: (paths.length / ms) * 1000, ms };
}

export interface DrainOptions {
  dbFile: string;
  root: string;
  handler: Handler;
  concurrency: number;
  logFile: string;
  workerId: string;
  /** Waited for after the store is open and before the runner starts (two-process start line). */
  go?: Promise<void>;
}

/**
 * Runs the real Runner over a database that already holds a backlog, until it finds nothing
 * left to claim and nothing running. Returns how many files it settled and when it finished
 * (epoch ms, comparable across processes): when its last file settled.
 *
 * The end is timed at the last outcome, so the idle check can be slow: polling it every 2 ms
 * cost the measured process 0.4-0.5 ms of CPU per file at 30-40 files/s (scenario 4, 400
 * files, 2 cores, load 7), as much as a claim transaction; a daemon spends nothing like it.
 */
export async function drainBacklog(o: DrainOptions): Promise<{ done: number; ms: number; startEpoch: number; endEpoch: number }> {
  const store = new SqliteStore(o.dbFile, { busyTimeoutMs: 250, lockTimeoutMs: 10_000 });
  const logger = createLogger({ level: 'info', format: 'json', destination: o.logFile });
  let done = 0;
  let lastOutcomeAt: number | undefined;
  const runner = new Runner({
    store,
    handler: o.handler,
    workerId: o.workerId,
    host: 'bench',
    concurrency: o.concurrency,
    leaseMs: 30_000,
    folders: [{ dir: o.root, readyMarker: null }],
    onSuccess: 'keep',
    onDead: 'keep',
    logger,
    onOutcome: () => {
      done++;
      lastOutcomeAt = performance.now();
    },
  });
  await o.go;
  const startEpoch = performance.timeOrigin + performance.now();
  const t0 = performance.now();
  runner.start();
  while (!runner.idle) await new Promise((r) => setTimeout(r, 20));
  const end = lastOutcomeAt ?? performance.now();
  const ms = end - t0;
  const endEpoch = performance.timeOrigin + end;
  await runner.stop(1_000);
  await store.close();
  return { done, ms, startEpoch, endEpoch };
}

/** A database holding `files` as a pending backlog (discovered in batches of 512). */
export async function backlogDb(dbFile: string, files: readonly DiscoveredFile[]): Promise<void> {
  const store = new SqliteStore(dbFile);
  for (let i = 0; i < files.length; i += DISCOVER_BATCH) await store.discover(files.slice(i, i + DISCOVER_BATCH), Date.now() - 1_000);
  // Fold the WAL into the file, so that copies of it start equal.
  store.db.pragma('wal_checkpoint(TRUNCATE)');
  await store.close();
}

export function noopModuleHandler(): Promise<Handler> {
  return createHandler({ module: NOOP_HANDLER, timeoutMs: 600_000 });
}
