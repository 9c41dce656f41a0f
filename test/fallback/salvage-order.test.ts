/**
 * Which copy of a row a salvage keeps, and rows older than their own attempt history: real
 * SQLite files and WALs, read by the page scan as a salvage reads them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { scanRecords } from '../../src/store/fallback/page-scan.js';
import { classify, rollForward, type SalvagedRows } from '../../src/store/fallback/salvage.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { files } from './helpers.js';

const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  cleanupTmpDirs();
});

/** The database and its -wal as they are on disk now, copied while the connection is open. */
function copyLive(db: string): { image: Buffer; wal: Buffer | null } {
  const wal = fs.existsSync(`${db}-wal`) ? fs.readFileSync(`${db}-wal`) : null;
  return { image: fs.readFileSync(db), wal };
}

describe('salvage: the newest copy of a row', () => {
  it('a copy in the WAL is newer than the one in the database file, whatever their updated_at says', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const s = new SqliteStore(db);
    open.push(s);
    s.db.pragma('wal_autocheckpoint = 0');
    const [f] = files('w', 1);
    await s.discover([f!], Date.now());
    // A claim given back for a marker wrote this copy, and a checkpoint put it in the file...
    s.db.prepare("UPDATE file_checkpoints SET status = 'failed', attempts = 4, updated_at = '2026-11-28T14:03:50.579Z'").run();
    s.db.pragma('wal_checkpoint(TRUNCATE)');
    // ...then a replay recorded the file dead, stamped with the time the outcome happened.
    s.db.prepare("UPDATE file_checkpoints SET status = 'dead', attempts = 5, updated_at = '2026-11-28T14:03:49.040Z'").run();

    const { image, wal } = copyLive(db);
    expect(wal).not.toBeNull();
    const records = scanRecords(image, wal);
    const copies = records.filter((r) => r.values.includes(f!.fileUrl) && r.values.length > 20);
    expect(copies.map((r) => r.source).sort()).toEqual(['db', 'wal']);
    const row = classify(records).checkpoints.get(f!.fileUrl);
    expect(row).toMatchObject({ status: 'dead', attempts: 5 });
  });
});

describe('salvage: a row older than its own attempt history', () => {
  const T = (s: number) => `2026-11-28T14:03:${String(s).padStart(2, '0')}.000Z`;
  const row = (over: Record<string, unknown>) => ({
    file_url: '/in/a.csv', version: 1, status: 'failed', attempts: 4, retry_count: 4, updated_at: T(40), claim_token: 't4',
    processed_by: 'w', started_at: T(39), completed_at: null, due_at: T(41), error_message: 'exit 1', after_action: null,
    processing_time_ms: 5, handler_pid: null, ...over,
  });
  const attempt = (n: number, outcome: string, ended: number, after: string | null = null) => ({
    id: n, file_url: '/in/a.csv', version: 1, attempt: n, worker_id: 'w', claim_token: `t${n}`, started_at: T(ended - 1), ended_at: T(ended),
    outcome, error_message: outcome === 'completed' ? null : 'exit 1', duration_ms: 7, after_action: after,
  });
  const salvaged = (checkpoints: Record<string, unknown>[], attempts: Record<string, unknown>[]): SalvagedRows => ({
    checkpoints: checkpoints as SalvagedRows['checkpoints'], attempts: attempts as SalvagedRows['attempts'], tombstones: [],
    headerRepaired: false, sqlError: null, fromSql: { checkpoints: 0, attempts: 0, tombstones: 0 }, fromPages: { checkpoints: 0, attempts: 0, tombstones: 0 }, skippedRanges: 0,
  });

  it('a failure that recorded an after-action (only a dead one does) makes it dead, with that after-action', () => {
    const rows = salvaged([row({})], [attempt(4, 'exit', 40), attempt(5, 'exit', 45, 'move:/in/dead')]);
    expect(rollForward(rows)).toBe(1);
    expect(rows.checkpoints[0]).toMatchObject({ status: 'dead', attempts: 5, after_action: 'move:/in/dead', claim_token: 't5', due_at: null });
  });

  it('a completion makes it completed; a plain failure makes it failed and due now', () => {
    const done = salvaged([row({})], [attempt(5, 'completed', 45, 'move:/in/done')]);
    expect(rollForward(done)).toBe(1);
    expect(done.checkpoints[0]).toMatchObject({ status: 'completed', attempts: 5, completed_at: T(45), error_message: null });
    const failed = salvaged([row({ status: 'processing', attempts: 5, updated_at: T(43) })], [attempt(5, 'timeout', 45)]);
    expect(rollForward(failed)).toBe(1);
    expect(failed.checkpoints[0]).toMatchObject({ status: 'failed', attempts: 5, retry_count: 5, due_at: T(45) });
  });

  it('a row written after the attempt stands (a requeue), and so does one that attempts given back or conflicting do not settle', () => {
    const requeued = salvaged([row({ status: 'pending', attempts: 5, retry_count: 0, updated_at: T(50) })], [attempt(5, 'exit', 45, 'move:/in/dead')]);
    expect(rollForward(requeued)).toBe(0);
    expect(requeued.checkpoints[0]).toMatchObject({ status: 'pending' });
    const unsettled = salvaged([row({})], [attempt(5, 'released', 45), attempt(6, 'conflict', 46)]);
    expect(rollForward(unsettled)).toBe(0);
  });
});
