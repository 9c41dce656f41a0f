/**
 * Does the database stay bounded under retention? A simulated month at a steady rate, with the
 * daemon's hourly retention pass (scripts/bench/retention-sim.ts), run twice: with tombstones
 * expiring, and with tombstones kept for ever (what `ckpt purge` alone does). Writes
 * scripts/bench/retention-results.md.
 *
 *   node --import tsx scripts/bench/retention.ts [--scale=N] [--days=N]
 *
 * Scale: the box takes 10 files/s (36,000 an hour, 26M a month). What fills the database at
 * steady state is rate x window for each kind of row, so every count and the file size are
 * linear in the rate while the shape over time (growth until the longest window has passed,
 * flat after) does not depend on it. The run divides the rate by --scale (default 100: 360
 * files an hour, 8,640 a day) and keeps the clock, the windows and the hourly passes as they
 * are; multiply its counts and bytes by the scale for the full rate.
 *
 * Windows: completed 7d, dead 14d, tombstones 7d, so that the month shows two weeks of plateau
 * after the longest path to deletion (a tombstone is deleted 7 + 7 days after its file
 * completed; a dead row 14 days after it died). The default 30d/90d windows have the same
 * shape, reached after 90 days.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RETENTION_BATCH } from '../../src/daemon/retention.js';
import { openDatabase } from '../../src/store/open-database.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { iso } from '../../src/store/time.js';
import { type DaySample, simulate } from './retention-sim.js';
import { BENCH_DIR, argNumber, log, median, tmpDir } from './lib.js';

const DAY = 86_400_000;
const SCALE = argNumber('scale', 100);
/** Rows in the database the batch timing purges from (built with SQL: seconds, not hours). */
const BIG = argNumber('big', 1_000_000);
const DAYS = argNumber('days', 30);
const RATE_PER_S = 10;
const filesPerHour = Math.round((RATE_PER_S * 3600) / SCALE);
const windows = { completedMs: 7 * DAY, deadMs: 14 * DAY, tombstonesMs: 7 * DAY };

async function run(label: string, tombstonesMs: number | null): Promise<DaySample[]> {
  const dir = tmpDir();
  const t0 = performance.now();
  const samples = await simulate({
    file: path.join(dir, 'month.db'),
    days: DAYS,
    filesPerHour,
    deadEvery: 100,
    retention: { ...windows, tombstonesMs },
    onDay: (s) => {
      if (s.day % 5 === 0) log(`${label} day ${s.day}: ${(s.bytes / 1e6).toFixed(1)} MB, ${s.checkpoints} rows, ${s.tombstones} tombstones`);
    },
  });
  log(`${label}: ${Math.round((performance.now() - t0) / 1000)} s`);
  return samples;
}

const mb = (b: number) => (b / 1e6).toFixed(1);

function table(samples: DaySample[]): string[] {
  const out = ['| day | files so far | file MB | free pages | file_checkpoints | file_attempts | file_tombstones | purged that day (completed / dead / tombstones) | slowest batch ms |', '|---|---|---|---|---|---|---|---|---|'];
  for (const s of samples) {
    if (s.day !== 1 && s.day % 3 !== 0 && s.day !== samples.length) continue;
    out.push(
      `| ${s.day} | ${s.filesSoFar.toLocaleString('en-US')} | ${mb(s.bytes)} | ${s.freePages} | ${s.checkpoints.toLocaleString('en-US')} | ${s.attempts.toLocaleString('en-US')} | ${s.tombstones.toLocaleString('en-US')} | ${s.purged.completed} / ${s.purged.dead} / ${s.purged.tombstones} | ${s.slowestBatchMs.toFixed(1)} |`,
    );
  }
  return out;
}

/**
 * How long one purge batch holds the write lock on a large database: BIG completed rows (with an
 * attempt row each) older than the window, purged RETENTION_BATCH at a time through the store.
 */
async function batchTiming(): Promise<{ ms: number[]; bytes: number }> {
  const file = path.join(tmpDir(), 'big.db');
  const db = openDatabase(file);
  const old = iso(Date.parse('2026-01-01T00:00:00.000Z'));
  db.exec('BEGIN');
  db.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < @n - 1)
     INSERT INTO file_checkpoints (file_url, file_type, file_timestamp, status, records_total, records_persisted,
       processing_time_ms, processed_by, started_at, completed_at, created_at, version, attempts, fingerprint, file_size,
       claim_token, after_action, updated_at)
     SELECT printf('/data/inbox/2026/01/01/feed-%09d.csv', i), 'csv', @t, 'completed', 10, 10, 3, 'sim:1', @t, @t, @t, 1, 1,
       printf('%d:1767225599000:2049:%d', 1000 + i % 9000, 1000000 + i), 1000 + i % 9000,
       printf('%08x-0000-0000-0000-000000000000.%d', i, i + 1), 'keep', @t
     FROM n`,
  ).run({ n: BIG, t: old });
  db.prepare(
    `INSERT INTO file_attempts (file_url, version, attempt, worker_id, claim_token, started_at, ended_at, outcome, duration_ms, after_action)
     SELECT file_url, 1, 1, 'sim:1', claim_token, started_at, completed_at, 'completed', 3, 'keep' FROM file_checkpoints`,
  ).run();
  db.exec('COMMIT');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const bytes = fs.statSync(file).size;
  const store = new SqliteStore(file);
  const ms: number[] = [];
  const now = Date.parse('2026-02-01T00:00:00.000Z');
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const n = await store.purge({ olderThanMs: 7 * DAY, statuses: ['completed'], now, limit: RETENTION_BATCH });
    ms.push(performance.now() - t0);
    if (n !== RETENTION_BATCH) throw new Error(`batch ${i} purged ${n}`);
  }
  await store.close();
  return { ms, bytes };
}

async function main(): Promise<void> {
  const timing = await batchTiming();
  log(`purge batch of ${RETENTION_BATCH} on ${BIG} rows: median ${median(timing.ms).toFixed(1)} ms, max ${Math.max(...timing.ms).toFixed(1)} ms`);
  const expiring = await run('tombstones expire after 7d', windows.tombstonesMs);
  const kept = await run('tombstones kept', null);
  const at = (ss: DaySample[], day: number) => ss[day - 1]!;
  const last = at(expiring, DAYS);
  const mid = at(expiring, 17);
  const lines = [
    '# Retention over a simulated month',
    '',
    '<!-- Written by scripts/bench/retention.ts. Do not edit: run it again. -->',
    '',
    `Run on ${new Date().toISOString()}, ${os.cpus().length} cores, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}:`,
    '',
    '```',
    `node --import tsx scripts/bench/retention.ts --scale=${SCALE} --days=${DAYS}`,
    '```',
    '',
    `${filesPerHour.toLocaleString('en-US')} files an hour (10 files/s divided by ${SCALE}), one in 100 dead-lettered, the daemon's`,
    `retention pass every simulated hour in batches of ${RETENTION_BATCH} rows, windows completed 7d, dead 14d,`,
    'tombstones 7d. Real SqliteStore, real database file; sizes after a TRUNCATE checkpoint. Counts and bytes',
    `are linear in the rate: multiply by ${SCALE} for 10 files/s.`,
    '',
    `## One purge batch on a large database`,
    '',
    `${BIG.toLocaleString('en-US')} completed rows with an attempt row each (${mb(timing.bytes)} MB), purged ${RETENTION_BATCH} at a time through`,
    `the store: ${timing.ms.length} batches, median ${median(timing.ms).toFixed(1)} ms, slowest ${Math.max(...timing.ms).toFixed(1)} ms per batch (one write`,
    'transaction each: the longest any other writer waits behind the purge).',
    '',
    '## Tombstones expire after 7 days',
    '',
    ...table(expiring),
    '',
    `From day 17 to day ${DAYS}: file ${mb(mid.bytes)} -> ${mb(last.bytes)} MB, file_checkpoints ${mid.checkpoints.toLocaleString('en-US')} -> ${last.checkpoints.toLocaleString('en-US')}, tombstones ${mid.tombstones.toLocaleString('en-US')} -> ${last.tombstones.toLocaleString('en-US')}.`,
    '',
    '## Tombstones kept for ever (no tombstone window)',
    '',
    ...table(kept),
    '',
    `Day ${DAYS}: ${at(kept, DAYS).tombstones.toLocaleString('en-US')} tombstones and ${mb(at(kept, DAYS).bytes)} MB, still growing by one tombstone per file.`,
    '',
  ];
  const out = path.join(BENCH_DIR, 'retention-results.md');
  fs.writeFileSync(out, lines.join('\n'));
  log(`wrote ${out}`);
}

await main();
