/**
 * Scenario 3: does claim + complete slow down as completed rows pile up?
 *
 *   node --import tsx scripts/bench/growth.ts [--full] [--big=N] [--pending=N] [--runs=N]
 *
 * Two databases with ckpt's real schema (openDatabase + migrations): one with 10,000 completed
 * files (and their attempt rows) beside the pending ones, one with 1,000,000. The real
 * SqliteStore claims 64 and completes them, over and over, until the pending rows are done;
 * the pending rows are then put back (same rows, same rowids) for the next round. Interleaved.
 * Goal: the 1M-row rate >= 0.9x the 10k-row rate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../../src/store/open-database.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { iso } from '../../src/store/time.js';
import { FULL, argNumber, emit, log, median, tmpDir } from './lib.js';

const SMALL = argNumber('small', 10_000);
/** The short run stops at 250k rows: building 1M takes 20+ s here (the full run does 1M). */
const BIG = argNumber('big', FULL ? 1_000_000 : 250_000);
const PENDING = argNumber('pending', FULL ? 30_000 : 10_000);
const RUNS = argNumber('runs', FULL ? 5 : 3);
const BATCH = 64;

/**
 * `completed` finished files (checkpoint + one attempt row each, with realistic paths and
 * times), then `pending` files ready to claim. Built with SQL so that a million rows take
 * seconds, not the minutes discovery + claim + complete would.
 */
function build(file: string, completed: number, pending: number): { firstPendingRowid: number; firstNewAttemptId: number } {
  const db = openDatabase(file);
  const old = iso(Date.now() - 86_400_000);
  db.exec('BEGIN');
  db.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < @n - 1)
     INSERT INTO file_checkpoints (file_url, file_type, file_timestamp, status, records_total, records_filtered,
       records_persisted, processing_time_ms, processed_by, started_at, completed_at, created_at, version, attempts,
       fingerprint, file_size, claim_token, due_at, after_action, updated_at)
     SELECT printf('/data/inbox/2026/11/%02d/done-%09d.csv', i % 28 + 1, i), 'bench', @t, 'completed', 10, 0, 10, 3,
       'host:1', @t, @t, @t, 1, 1, printf('%d:1764300000000:2049:%d', 100 + i % 900, 1000000 + i), 100 + i % 900,
       printf('%08x-0000-0000-0000-000000000000.%d', i, i + 1), NULL, 'keep', @t
     FROM n`,
  ).run({ n: completed, t: old });
  db.prepare(
    `INSERT INTO file_attempts (file_url, version, attempt, worker_id, claim_token, started_at, ended_at, outcome, duration_ms, after_action)
     SELECT file_url, 1, 1, 'host:1', claim_token, started_at, completed_at, 'completed', 3, 'keep' FROM file_checkpoints`,
  ).run();
  const firstPendingRowid = completed + 1;
  const firstNewAttemptId = completed + 1;
  const due = iso(Date.now() - 60_000);
  db.prepare(
    `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < @n - 1)
     INSERT INTO file_checkpoints (file_url, file_type, file_timestamp, status, fingerprint, file_size, due_at, created_at, updated_at)
     SELECT printf('/data/inbox/2026/11/28/new-%09d.csv', i), 'bench', @t, 'pending',
       printf('%d:1764300000000:2049:%d', 100 + i % 900, 9000000 + i), 100 + i % 900, @t, @t, @t
     FROM n`,
  ).run({ n: pending, t: due });
  db.exec('COMMIT');
  db.exec('ANALYZE');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return { firstPendingRowid, firstNewAttemptId };
}

/** Put the pending rows back as they were before a round (and drop that round's attempt rows). */
function reset(file: string, firstPendingRowid: number, firstNewAttemptId: number): void {
  const db = openDatabase(file);
  const due = iso(Date.now() - 60_000);
  db.transaction(() => {
    db.prepare(
      `UPDATE file_checkpoints SET status = 'pending', attempts = 0, claim_token = NULL, processed_by = NULL,
         started_at = NULL, completed_at = NULL, due_at = ?, after_action = NULL, updated_at = ?
       WHERE rowid >= ?`,
    ).run(due, due, firstPendingRowid);
    db.prepare('DELETE FROM file_attempts WHERE id >= ?').run(firstNewAttemptId);
  }).immediate();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

async function claimComplete(file: string): Promise<number> {
  const store = new SqliteStore(file, { busyTimeoutMs: 250 });
  const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 };
  let done = 0;
  const t0 = performance.now();
  for (;;) {
    const claims = await store.claim(BATCH, { workerId: 'bench:1', leaseMs: 30_000, now: Date.now() });
    if (claims.length === 0) break;
    const now = Date.now();
    const res = await store.complete(claims.map((c) => ({ fileUrl: c.fileUrl, token: c.token, now, stats, afterAction: 'keep' })));
    done += res.filter((r) => r === 'ok').length;
  }
  const ms = performance.now() - t0;
  await store.close();
  if (done !== PENDING) throw new Error(`completed ${done} of ${PENDING}`);
  return (done / ms) * 1000;
}

async function main(): Promise<void> {
  const dir = tmpDir();
  const small = path.join(dir, 'small.db');
  const big = path.join(dir, 'big.db');
  let t = performance.now();
  const s = build(small, SMALL, PENDING);
  log(`built ${SMALL} completed + ${PENDING} pending rows in ${Math.round(performance.now() - t)} ms`);
  t = performance.now();
  const b = build(big, BIG, PENDING);
  log(`built ${BIG} completed + ${PENDING} pending rows in ${Math.round(performance.now() - t)} ms (${Math.round(fs.statSync(big).size / 1e6)} MB)`);
  const rs: number[] = [];
  const rb: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    if (r > 0) {
      reset(small, s.firstPendingRowid, s.firstNewAttemptId);
      reset(big, b.firstPendingRowid, b.firstNewAttemptId);
    }
    rs.push(await claimComplete(small));
    rb.push(await claimComplete(big));
    log(`run ${r + 1}: ${SMALL} rows ${Math.round(rs[r]!)} files/s; ${BIG} rows ${Math.round(rb[r]!)} files/s`);
  }
  emit({
    id: '3',
    title: 'Claim + complete beside many completed rows',
    params: { small: SMALL, big: BIG, pending: PENDING, batch: BATCH, runs: RUNS },
    measures: [
      { name: `claim ${BATCH} + complete ${BATCH}, ${SMALL.toLocaleString('en-US')} completed rows`, unit: 'files/s', runs: rs, better: 'higher' },
      { name: `claim ${BATCH} + complete ${BATCH}, ${BIG.toLocaleString('en-US')} completed rows`, unit: 'files/s', runs: rb, better: 'higher' },
    ],
    ratios: [{ goal: `${BIG.toLocaleString('en-US')} rows / ${SMALL.toLocaleString('en-US')} rows >= 0.9`, value: median(rb) / median(rs), target: 0.9, op: '>=', how: 'median / median' }],
    notes: [
      'The completed rows have one attempt row each, so file_attempts grows with them, as it does in service.',
      ...(BIG < 1_000_000 ? [`Short run: ${BIG.toLocaleString('en-US')} completed rows instead of 1,000,000 (building 1M rows takes 20+ s); the full run uses 1M.`] : []),
    ],
  });
}

await main();
