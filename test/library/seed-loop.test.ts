/**
 * The library API used the seed's way: claimFile(url, type, new Date()) in a loop. A completed
 * file is never claimed again, whatever timestamp is passed; only an explicit `version` makes
 * a finished file new.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CheckpointManager } from '../../src/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { killChildren, runTs } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killChildren();
  cleanupTmpDirs();
});

const STATS = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 0 };
/** A backoff of at most a millisecond: the test waits for "retried later" without sleeping. */
const QUICK = { maxRetries: 3, baseDelayMs: 1, maxDelayMs: 1 };

function lines(file: string): string[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

describe("the seed's processFiles loop", () => {
  it('four processes, two passes each over the same 3,000 URLs: each URL claimed and completed once', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'seed.db');
    const N = 3_000;
    const urls = path.join(dir, 'urls');
    fs.writeFileSync(urls, Array.from({ length: N }, (_, i) => `s3://bucket/events/${i}.json`).join('\n'));
    const outs = [0, 1, 2, 3].map((i) => path.join(dir, `handled${i}`));
    const ran = await Promise.all(outs.map((out) => runTs('test/fixtures/seed-loop.ts', [db, urls, out, '2'])));
    for (const r of ran) expect(r.code, r.stderr).toBe(0);

    const handled = outs.flatMap(lines);
    expect(handled).toHaveLength(N);
    expect(new Set(handled).size).toBe(N);

    const check = new SqliteStore(db);
    try {
      const rows = check.db
        .prepare(`SELECT status, version, attempts, count(*) AS n FROM file_checkpoints GROUP BY status, version, attempts`)
        .all();
      expect(rows).toEqual([{ status: 'completed', version: 1, attempts: 1, n: N }]);
      const attempts = check.db
        .prepare(`SELECT outcome, count(*) AS n, count(DISTINCT file_url) AS files FROM file_attempts GROUP BY outcome`)
        .all();
      expect(attempts).toEqual([{ outcome: 'completed', n: N, files: N }]);
    } finally {
      await check.close();
    }
  });
});

describe('CheckpointManager, the seed calls', () => {
  it('a completed file is not claimed again with a later timestamp; the first timestamp stays recorded', async () => {
    const db = path.join(tmpDir(), 'ts.db');
    const m = new CheckpointManager({ database: db, workerId: 'w1' });
    try {
      const url = '/data/a.csv';
      expect(await m.claimFile(url, 'events', new Date('2026-01-01T00:00:00Z'))).toBe(true);
      expect(await m.isProcessed(url)).toBe(false);
      await m.completeFile(url, STATS);
      expect(await m.isProcessed(url)).toBe(true);
      expect(await m.claimFile(url, 'events', new Date())).toBe(false);
      expect(await m.claimFile(url, 'events', new Date('2030-01-01T00:00:00Z'))).toBe(false);
      const check = new SqliteStore(db);
      const row = check.db.prepare('SELECT status, version, file_timestamp, processed_by FROM file_checkpoints').get();
      await check.close();
      expect(row).toEqual({ status: 'completed', version: 1, file_timestamp: '2026-01-01T00:00:00.000Z', processed_by: 'w1' });
      expect(m.getWorkerId()).toBe('w1');
    } finally {
      await m.close();
    }
  });

  it('failFile with a message: retried later, three retries as in the seed (retry_count < 3), then never again', async () => {
    const db = path.join(tmpDir(), 'fail.db');
    const m = new CheckpointManager({ database: db, retry: QUICK });
    try {
      const url = '/data/bad.csv';
      const runs: number[] = [];
      for (let run = 1; run <= 4; run++) {
        await waitFor(() => m.claimFile(url, 'events', new Date()), { message: `run ${run} is claimed` });
        runs.push(run);
        expect(await m.failFile(url, `sink refused batch ${run}`)).toBe(run < 4 ? 'failed' : 'dead');
        expect(await m.isProcessed(url)).toBe(false);
      }
      expect(runs).toEqual([1, 2, 3, 4]);
      // Dead: no timestamp and no wait brings it back.
      expect(await m.claimFile(url, 'events', new Date(Date.now() + 86_400_000))).toBe(false);
      const check = new SqliteStore(db);
      const row = check.db.prepare('SELECT status, retry_count, error_message FROM file_checkpoints').get();
      const outcomes = check.db.prepare('SELECT attempt, outcome, error_message FROM file_attempts ORDER BY attempt').all();
      await check.close();
      expect(row).toEqual({ status: 'dead', retry_count: 4, error_message: 'sink refused batch 4' });
      expect(outcomes).toEqual([1, 2, 3, 4].map((a) => ({ attempt: a, outcome: 'failed', error_message: `sink refused batch ${a}` })));
    } finally {
      await m.close();
    }
  });
});

describe('CheckpointManager, reprocessing on purpose: the version option', () => {
  it('a completed file is claimed again only under a different version', async () => {
    const db = path.join(tmpDir(), 'version.db');
    const m = new CheckpointManager({ database: db });
    try {
      const url = 's3://bucket/daily.csv';
      const t = new Date('2026-03-01T00:00:00Z');
      expect(await m.claimFile(url, 'daily', t, { version: 'etag-1' })).toBe(true);
      await m.completeFile(url, STATS);
      expect(await m.claimFile(url, 'daily', new Date(), { version: 'etag-1' })).toBe(false);
      expect(await m.claimFile(url, 'daily', new Date())).toBe(false);
      expect(await m.claimFile(url, 'daily', t, { version: 'etag-2' })).toBe(true);
      await m.completeFile(url, STATS);
      expect(await m.claimFile(url, 'daily', new Date())).toBe(false);
      const check = new SqliteStore(db);
      const row = check.db.prepare('SELECT status, version, fingerprint FROM file_checkpoints').get();
      const attempts = check.db.prepare('SELECT version, attempt, outcome FROM file_attempts ORDER BY version').all();
      await check.close();
      expect(row).toEqual({ status: 'completed', version: 2, fingerprint: 'etag-2' });
      expect(attempts).toEqual([
        { version: 1, attempt: 1, outcome: 'completed' },
        { version: 2, attempt: 1, outcome: 'completed' },
      ]);
    } finally {
      await m.close();
    }
  });

  it("onChange 'ignore' keeps a finished file finished under a new version; an empty version is refused", async () => {
    const db = path.join(tmpDir(), 'ignore.db');
    const m = new CheckpointManager({ database: db, onChange: 'ignore' });
    try {
      const url = '/data/x.csv';
      expect(await m.claimFile(url, 'x', new Date(), { version: 'sha256:aa' })).toBe(true);
      await m.completeFile(url, STATS);
      expect(await m.claimFile(url, 'x', new Date(), { version: 'sha256:bb' })).toBe(false);
      await expect(m.claimFile(url, 'x', new Date(), { version: '' })).rejects.toThrow(/version must be a non-empty string/);
    } finally {
      await m.close();
    }
  });
});
