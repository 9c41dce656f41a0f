/**
 * A corrupt database file: never deleted or overwritten, moved aside byte for byte, salvaged
 * into a fresh file, and no salvaged completed file is handled again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { DiscoveredFile } from '../../src/store/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { CORRUPTIONS, type Corruption, STATS, corrupt, corruptFileOf, dbRows, files, statusOf } from './helpers.js';

const stores: FallbackStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  cleanupTmpDirs();
});

function open(db: string, extra: { healthCheckMs?: number; snapshotMs?: number; workerId?: string } = {}): FallbackStore {
  const s = new FallbackStore(db, { lockTimeoutMs: 300, busyTimeoutMs: 20, fallback: { workerId: extra.workerId ?? 'w1', probeMs: 100, snapshotMs: extra.snapshotMs ?? 0, ...(extra.healthCheckMs === undefined ? {} : { healthCheckMs: extra.healthCheckMs }) } });
  stores.push(s);
  return s;
}

const W = { workerId: 'w1', leaseMs: 3_600_000 };
// Big enough that one 4 KiB page (about 15 rows) is under 1% of the rows, as in the goal.
const N = 2_000;

/** A database in which N files were completed and 20 wait, as a running ckpt leaves it (closed: checkpointed). */
async function populated(db: string): Promise<{ done: DiscoveredFile[]; waiting: DiscoveredFile[] }> {
  const s = new SqliteStore(db);
  const done = files('done-with-a-longer-name-', N);
  const waiting = files('waiting-', 20);
  await s.discover(done, Date.now());
  const cs = await s.claim(N, { ...W, now: Date.now() });
  await s.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats: STATS, now: Date.now(), afterAction: 'keep' })));
  await s.discover(waiting, Date.now());
  await s.close();
  return { done, waiting };
}

async function claimAll(s: FallbackStore): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const cs = await s.claim(100, { ...W, now: Date.now() });
    if (cs.length === 0) return out;
    out.push(...cs.map((c) => c.fileUrl));
    await s.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats: STATS, now: Date.now() })));
  }
}

describe('a corrupt database found at start', () => {
  for (const kind of CORRUPTIONS) {
    it(`${kind}: keeps the corrupt file, salvages, re-runs no salvaged completed file, handles new files once`, async () => {
      const dir = tmpDir();
      const db = path.join(dir, 'ckpt.db');
      const { done, waiting } = await populated(db);
      corrupt(db, kind);
      const damaged = fs.readFileSync(db);

      const s = open(db);
      expect(s.mode().mode).toBe('normal');
      expect(s.counters.salvages).toBe(1);
      const aside = corruptFileOf(db);
      expect(aside, 'moved aside').toBeDefined();
      expect(path.basename(aside!)).toMatch(/^ckpt\.db\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/);
      expect(fs.readFileSync(aside!).equals(damaged)).toBe(true);
      expect(dbRows(db, 'PRAGMA quick_check')).toEqual([{ quick_check: 'ok' }]);

      const survived = new Set(dbRows(db, `SELECT file_url FROM file_checkpoints WHERE status = 'completed'`).map((r) => String(r.file_url)));
      if (kind === 'header' || kind === 'middle-page') expect(survived.size).toBeGreaterThanOrEqual(Math.ceil(0.99 * N));
      // The watcher's start-up scan offers every file again, and two new ones.
      const fresh = files('new-', 2);
      await s.discover([...done, ...waiting, ...fresh], Date.now());
      const handed = await claimAll(s);
      for (const f of handed) expect(survived.has(f), `${f} survived as completed but was handed out again`).toBe(false);
      for (const f of fresh) expect(handed).toContain(f.fileUrl);
      expect(new Set(handed).size).toBe(handed.length);
      expect(await s.claim(100, { ...W, now: Date.now() })).toEqual([]);
      expect(statusOf(db).completed).toBe(N + waiting.length + fresh.length);
    });
  }
});

describe('corruption while running', () => {
  it('the health check finds a damaged header under a running store; work goes on against the salvaged file', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const { done } = await populated(db);
    const s = open(db, { healthCheckMs: 100 });
    await s.discover(files('live-', 4), Date.now());
    const [held] = await s.claim(1, { ...W, now: Date.now() });
    corrupt(db, 'header');
    await waitFor(() => s.counters.salvages === 1, { timeoutMs: 10_000, message: 'salvaged' });
    await waitFor(() => s.mode().mode === 'normal', { timeoutMs: 10_000 });
    expect(corruptFileOf(db)).toBeDefined();
    // The claim held across the salvage still completes, under its own token.
    expect(await s.complete([{ fileUrl: held!.fileUrl, token: held!.token, stats: STATS, now: Date.now() }])).toEqual(['ok']);
    await s.discover([...done, ...files('live-', 4)], Date.now());
    const handed = await claimAll(s);
    expect(handed.sort()).toEqual([...files('waiting-', 20), ...files('live-', 4)].map((f) => f.fileUrl).filter((f) => f !== held!.fileUrl).sort());
  });

  it('another process salvages the file: this one notices the new file, replays, and carries its claim over', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    await populated(db);
    const a = open(db, { workerId: 'A', healthCheckMs: 0 });
    const [held] = await a.claim(1, { ...W, workerId: 'A', now: Date.now() });
    corrupt(db, 'middle-page');
    // B starts (a restart of a second daemon, a CLI with fallback): it finds the damage at open.
    const b = open(db, { workerId: 'B', healthCheckMs: 0 });
    expect(b.counters.salvages).toBe(1);
    // A's next call sees a different file at the path: it reopens and goes on.
    expect(await a.complete([{ fileUrl: held!.fileUrl, token: held!.token, stats: STATS, now: Date.now() }])).toEqual(['ok']);
    await waitFor(() => a.mode().mode === 'normal', { timeoutMs: 10_000 });
    expect(dbRows(db, 'SELECT status FROM file_checkpoints WHERE file_url = ?', held!.fileUrl)).toEqual([{ status: 'completed' }]);
    const fromA = await a.claim(100, { ...W, workerId: 'A', now: Date.now() });
    const fromB = await b.claim(100, { ...W, workerId: 'B', now: Date.now() });
    const all = [...fromA, ...fromB].map((c) => c.fileUrl);
    expect(new Set(all).size).toBe(all.length);
    expect(all).not.toContain(held!.fileUrl);
  });

  it('with a snapshot, even random bytes lose only what came after it', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const { done } = await populated(db);
    const s1 = open(db, { snapshotMs: 3_600_000 });
    await s1.snapshot(true);
    await s1.close();
    corrupt(db, 'random');
    const s = open(db);
    expect(s.lastSalvage?.fromSnapshot).toBe(N + 20);
    await s.discover(done, Date.now());
    expect(await claimAll(s)).toEqual(files('waiting-', 20).map((f) => f.fileUrl));
  });
});
