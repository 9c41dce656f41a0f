/**
 * A claim with nothing to take answers from a read (src/store/claimable.ts): it does not take
 * the write lock, so a daemon with nothing due neither waits behind another writer nor holds
 * one up. A claim that has a file to take, or an expired lease to sweep, still writes.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { ClaimOptions, DiscoveredFile, ExpiredClaim } from '../../src/store/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(() => cleanupTmpDirs());

const file = (name: string): DiscoveredFile => ({ fileUrl: `/in/${name}`, fileType: 'csv', mtimeMs: 1, size: 1, fingerprint: `1:1:1:${name.length}` });
const opts = (now: number, extra: Partial<ClaimOptions> = {}): ClaimOptions => ({ workerId: 'host:1', leaseMs: 30_000, now, ...extra });

function setup(): { store: SqliteStore; lock: () => () => void } {
  const db = path.join(tmpDir(), 'ckpt.db');
  const store = new SqliteStore(db, { lockTimeoutMs: 200, busyTimeoutMs: 0 });
  const lock = () => {
    const other = new Database(db);
    other.exec('BEGIN IMMEDIATE');
    return () => {
      other.exec('COMMIT');
      other.close();
    };
  };
  return { store, lock };
}

describe('SqliteStore.claim with nothing to take', () => {
  it('answers [] without waiting for a write lock another connection holds', async () => {
    const { store, lock } = setup();
    const now = Date.now();
    await store.discover([file('a.csv')], now);
    expect(await store.claim(10, opts(now))).toHaveLength(1);
    const release = lock();
    try {
      // Nothing pending, the one lease runs 30 s more: nothing to take or sweep.
      expect(await store.claim(10, opts(now + 1_000))).toEqual([]);
    } finally {
      release();
      await store.close();
    }
  });

  it('a file due: the claim still takes the lock (and reports it locked while another holds it)', async () => {
    const { store, lock } = setup();
    const now = Date.now();
    await store.discover([file('a.csv')], now);
    const release = lock();
    try {
      await expect(store.claim(10, opts(now))).rejects.toMatchObject({ name: 'StoreUnavailableError', kind: 'locked' });
    } finally {
      release();
    }
    expect((await store.claim(10, opts(now))).map((c) => c.fileUrl)).toEqual(['/in/a.csv']);
    await store.close();
  });

  it('a lease run out: the claim takes the lock and sweeps it, though nothing is pending', async () => {
    const { store, lock } = setup();
    const now = Date.now();
    await store.discover([file('a.csv')], now);
    expect(await store.claim(10, opts(now, { leaseMs: 1_000 }))).toHaveLength(1);
    const later = now + 5_000;
    const release = lock();
    try {
      await expect(store.claim(10, opts(later))).rejects.toMatchObject({ kind: 'locked' });
    } finally {
      release();
    }
    const expired: ExpiredClaim[] = [];
    await store.claim(10, opts(later, { onExpired: (e) => expired.push(...e) }));
    expect(expired.map((e) => e.fileUrl)).toEqual(['/in/a.csv']);
    await store.close();
  });
});
