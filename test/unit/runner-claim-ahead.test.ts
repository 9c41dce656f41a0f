/**
 * The runner's claim-ahead (fast handlers claim more than their free slots and keep the extra in
 * a local queue) and its file checks through the thread pool for polled folders. Real SqliteStore,
 * real folders, the real module handler loading a module written here. Claim transactions are
 * counted on the real store by wrapping its claim method (the SQL still runs).
 */
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../src/run/handler.js';
import { type OutcomeKind, Runner } from '../../src/run/runner.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Claim, ClaimOptions, DiscoveredFile } from '../../src/store/types.js';
import { fingerprintOf } from '../../src/file-identity.js';
import { rows } from '../helpers/daemon.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const stores: SqliteStore[] = [];
const runners: Runner[] = [];
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop(0);
  for (const s of stores.splice(0)) await s.close();
  cleanupTmpDirs();
});

/**
 * A module handler: files named `hold-*` wait for ctx.signal (a run that is still going when the
 * runner stops), files named `slow-*` take 80 ms (over the 50 ms "fast" line), the rest return.
 */
const HANDLER_SOURCE = `
import path from 'node:path';
export default async function (file, ctx) {
  const name = path.basename(file);
  if (name.startsWith('hold-')) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
  if (name.startsWith('slow-')) await new Promise((resolve) => setTimeout(resolve, 80));
  return { total: 1, filtered: 0, persisted: 1 };
}
`;

interface Fixture {
  dir: string;
  inbox: string;
  db: string;
  store: SqliteStore;
  /** Files asked for and files got, per claim transaction. */
  claims: { asked: number; got: number }[];
  outcomes: Map<string, OutcomeKind>;
  runner: Runner;
}

async function fixture(names: string[], concurrency: number, folder: { poll?: boolean | 'auto' } = {}, isNetworkFs?: (dir: string) => boolean): Promise<Fixture> {
  const dir = tmpDir('ckpt-claim-ahead-');
  const inbox = path.join(dir, 'inbox');
  fs.mkdirSync(inbox);
  const mod = path.join(dir, 'handler.mjs');
  fs.writeFileSync(mod, HANDLER_SOURCE);
  const found: DiscoveredFile[] = names.map((n) => {
    const f = path.join(inbox, n);
    fs.writeFileSync(f, 'ok\n');
    const st = fs.lstatSync(f);
    return { fileUrl: f, fileType: 'inbox', mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) };
  });
  const db = path.join(dir, 'ckpt.db');
  const store = new SqliteStore(db);
  stores.push(store);
  await store.discover(found, Date.now());
  const claims: { asked: number; got: number }[] = [];
  const claim = store.claim.bind(store);
  store.claim = async (n: number, opts: ClaimOptions): Promise<Claim[]> => {
    const got = await claim(n, opts);
    claims.push({ asked: n, got: got.length });
    return got;
  };
  const outcomes = new Map<string, OutcomeKind>();
  const runner = new Runner({
    store,
    handler: await createHandler({ module: mod }),
    workerId: `test:${process.pid}`,
    host: 'test',
    concurrency,
    leaseMs: 30_000,
    folders: [{ dir: inbox, readyMarker: null, ...folder }],
    onSuccess: 'keep',
    onDead: 'keep',
    logger: pino({ level: 'silent' }),
    onOutcome: (f, o) => outcomes.set(f, o),
    ...(isNetworkFs ? { isNetworkFs } : {}),
  });
  runners.push(runner);
  return { dir, inbox, db, store, claims, outcomes, runner };
}

const named = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}.csv`);

describe('claim-ahead', () => {
  it('a fast handler claims more than its free slots; stopping gives the queued files back without counting an attempt', async () => {
    // 200 fast files, then 60 that hold their slot until the runner stops.
    const fx = await fixture([...named('a', 200), ...named('hold', 60)], 2);
    fx.runner.start();
    await waitFor(() => [...fx.outcomes.values()].filter((o) => o === 'completed').length === 200, { message: 'the 200 fast files did not complete' });
    await waitFor(() => fx.runner.inFlight === 2 && fx.runner.queuedCount > 0, { message: 'no files were queued behind the two held slots' });
    const queued = fx.runner.queuedCount;

    // At concurrency 2 without claim-ahead, every claim carries at most 2 files: 100+ claims.
    expect(Math.max(...fx.claims.map((c) => c.got))).toBeGreaterThan(2);
    expect(fx.claims.filter((c) => c.got > 0).length).toBeLessThan(30);

    await fx.runner.stop(0);
    const holds = rows(fx.db, `SELECT file_url, status, retry_count FROM file_checkpoints WHERE file_url LIKE '%/hold-%'`);
    const claimed = rows(fx.db, `SELECT DISTINCT file_url FROM file_attempts WHERE file_url LIKE '%/hold-%'`).length;
    // Every held or queued file is pending again with its retry budget untouched...
    expect(holds.filter((r) => r.status !== 'pending' || r.retry_count !== 0)).toEqual([]);
    expect(claimed).toBeGreaterThanOrEqual(2 + queued);
    // ...and its attempt is recorded as released, never as a failure.
    const outcomes = rows(fx.db, `SELECT outcome, count(*) AS n FROM file_attempts WHERE file_url LIKE '%/hold-%' GROUP BY outcome`);
    expect(outcomes).toEqual([{ outcome: 'released', n: claimed }]);
    expect(fx.runner.queuedCount).toBe(0);
  });

  it('a slow handler (runs over 50 ms) claims only its free slots', async () => {
    const fx = await fixture(named('slow', 12), 2);
    fx.runner.start();
    await waitFor(() => [...fx.outcomes.values()].filter((o) => o === 'completed').length === 12, { message: 'the slow files did not complete' });
    expect(fx.claims.filter((c) => c.asked > 2)).toEqual([]);
    expect(fx.claims.filter((c) => c.got > 0).length).toBeGreaterThanOrEqual(6);
  });
});

describe('file checks of a polled folder (through the thread pool)', () => {
  it('a vanished file and a folder swapped for a link out of the root are refused as in a local folder', async () => {
    let asked = 0;
    const fx = await fixture(['vanishes.csv', 'fine.csv'], 1, { poll: 'auto' }, () => {
      asked++;
      return true;
    });
    // A sub-folder that is a link to a folder outside the watched one.
    const outside = path.join(fx.dir, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'x.csv'), 'ok\n');
    fs.symlinkSync(outside, path.join(fx.inbox, 'sub'));
    const x = path.join(fx.inbox, 'sub', 'x.csv');
    const st = fs.statSync(x);
    await fx.store.discover([{ fileUrl: x, fileType: 'inbox', mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) }], Date.now());
    fs.unlinkSync(path.join(fx.inbox, 'vanishes.csv'));
    fx.runner.start();
    await waitFor(() => fx.outcomes.size === 3, { message: 'not every file was settled' });
    const byName = Object.fromEntries(rows(fx.db, 'SELECT file_url, status, error_message FROM file_checkpoints').map((r) => [path.basename(String(r.file_url)), [r.status, r.error_message]]));
    expect(byName['fine.csv']).toEqual(['completed', null]);
    expect(byName['vanishes.csv']).toEqual(['dead', 'file vanished before it was handled']);
    expect(byName['x.csv']![0]).toBe('dead');
    expect(byName['x.csv']![1]).toMatch(/outside the watched folder/);
    expect(asked).toBe(1);
  });
});
