/**
 * A month of a busy box, with the clock moved instead of waited for: files arrive at a steady
 * rate, are discovered, claimed and completed (a share of them dead-lettered) through the real
 * SqliteStore on a real database file, and every simulated hour the daemon's retention pass
 * (src/daemon/retention.ts retentionPass, same batches) runs as the daemon would run it.
 * Once a day the database is checkpointed and measured: file size, rows per table, free pages.
 *
 * Used by scripts/bench/retention.ts (the measured run) and test/store/retention-month.test.ts
 * (a smaller one that asserts the plateau).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { RetentionConfig } from '../../src/config/types.js';
import { RETENTION_BATCH, retentionPass } from '../../src/daemon/retention.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { DiscoveredFile } from '../../src/store/types.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface SimOptions {
  /** Database file to create (must not exist). */
  file: string;
  days: number;
  /** Files arriving per simulated hour. */
  filesPerHour: number;
  /** One file in `deadEvery` is dead-lettered (a permanent failure) instead of completed. */
  deadEvery: number;
  retention: RetentionConfig;
  /** Rows per purge transaction (default the daemon's). */
  batch?: number;
  start?: number;
  /** Called after each simulated day's measurement. */
  onDay?: (d: DaySample) => void;
}

export interface DaySample {
  day: number;
  filesSoFar: number;
  /** Main database file after a TRUNCATE checkpoint (the WAL is then empty). */
  bytes: number;
  freePages: number;
  checkpoints: number;
  attempts: number;
  tombstones: number;
  /** This day's retention passes. */
  purged: { completed: number; dead: number; tombstones: number };
  /** Slowest purge batch of the day (one write transaction), ms. */
  slowestBatchMs: number;
}

const STATS = { totalRows: 10, filteredRows: 0, persistedRows: 10, durationMs: 3 };

function arriving(seq: number, now: number): DiscoveredFile {
  const d = new Date(now).toISOString();
  const url = `/data/inbox/${d.slice(0, 4)}/${d.slice(5, 7)}/${d.slice(8, 10)}/feed-${String(seq).padStart(9, '0')}.csv`;
  const size = 1_000 + (seq % 9_000);
  return { fileUrl: url, fileType: 'csv', mtimeMs: now - 1_000, size, fingerprint: `${size}:${now - 1_000}:2049:${1_000_000 + seq}` };
}

/** One simulated hour of traffic: discovered, claimed in 64s, completed or dead-lettered. */
async function hourOfFiles(store: SqliteStore, o: SimOptions, hourStart: number, seq: number): Promise<number> {
  const gap = HOUR / o.filesPerHour;
  const files: DiscoveredFile[] = [];
  for (let i = 0; i < o.filesPerHour; i++) files.push(arriving(seq + i, hourStart + Math.floor(i * gap)));
  for (let i = 0; i < files.length; i += 500) await store.discover(files.slice(i, i + 500), hourStart + Math.floor(i * gap));
  let n = seq;
  for (;;) {
    const now = hourStart + HOUR - 1;
    const claims = await store.claim(64, { workerId: 'sim:1', leaseMs: 30_000, now });
    if (claims.length === 0) return n;
    const done = [];
    for (const c of claims) {
      if (n++ % o.deadEvery === 0) await store.fail({ fileUrl: c.fileUrl, token: c.token, error: 'exit code 65', permanent: true, now, durationMs: 3 });
      else done.push({ fileUrl: c.fileUrl, token: c.token, now, stats: STATS, afterAction: 'keep' });
    }
    await store.complete(done);
  }
}

function measure(file: string): Omit<DaySample, 'day' | 'filesSoFar' | 'purged' | 'slowestBatchMs'> {
  const db = new Database(file);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const count = (t: string) => (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return {
      bytes: fs.statSync(file).size,
      freePages: db.pragma('freelist_count', { simple: true }) as number,
      checkpoints: count('file_checkpoints'),
      attempts: count('file_attempts'),
      tombstones: count('file_tombstones'),
    };
  } finally {
    db.close();
  }
}

/** Runs the simulation; returns one sample per simulated day. */
export async function simulate(o: SimOptions): Promise<DaySample[]> {
  if (fs.existsSync(o.file)) throw new Error(`${o.file} exists`);
  fs.mkdirSync(path.dirname(o.file), { recursive: true });
  const start = o.start ?? Date.parse('2026-01-01T00:00:00.000Z');
  const batch = o.batch ?? RETENTION_BATCH;
  // The slowest single purge batch: the store is wrapped so each call is timed.
  const store = new SqliteStore(o.file, { lockTimeoutMs: 5_000 });
  let slowest = 0;
  const timed = new Proxy(store, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv) as unknown;
      if ((prop !== 'purge' && prop !== 'expireTombstones') || typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return (await (v as (...a: unknown[]) => Promise<number>).apply(target, args)) as number;
        } finally {
          slowest = Math.max(slowest, performance.now() - t0);
        }
      };
    },
  });
  const samples: DaySample[] = [];
  let seq = 0;
  try {
    for (let day = 1; day <= o.days; day++) {
      const purged = { completed: 0, dead: 0, tombstones: 0 };
      slowest = 0;
      for (let h = 0; h < 24; h++) {
        const hourStart = start + (day - 1) * DAY + h * HOUR;
        seq = await hourOfFiles(store, o, hourStart, seq);
        const r = await retentionPass(timed, o.retention, hourStart + HOUR, { batch });
        purged.completed += r.completed;
        purged.dead += r.dead;
        purged.tombstones += r.tombstones;
      }
      const s: DaySample = { day, filesSoFar: seq, ...measure(o.file), purged, slowestBatchMs: slowest };
      samples.push(s);
      o.onDay?.(s);
    }
  } finally {
    await store.close();
  }
  return samples;
}
