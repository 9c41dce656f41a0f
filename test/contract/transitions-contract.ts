/**
 * Walks the transition table (src/store/rules/transitions.ts) on a store: for every operation,
 * a row is put in each place (absent, pending, processing, failed, dead, completed, tombstone),
 * the operation is applied to all of them, and each row must end where the table says: in a
 * `to` of a transition from its place, or where it was when no transition of that operation
 * starts there. Run from runStoreContract, so every store walks the same table.
 */
import { describe, expect, it } from 'vitest';
import { type Operation, type Place, TRANSITIONS } from '../../src/store/rules/transitions.js';
import type { CheckpointStore, DiscoveredFile } from '../../src/store/types.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const LEASE = 30_000;
const W = 'host-a:1';
/** The walk's operations run here: past every failed row's backoff (500 ms), inside every lease. */
const NOW = T0 + 1_000;
/** The sweep runs here: past every lease. */
const SWEEP_AT = T0 + 40_000;
const PLACES: readonly Place[] = ['absent', 'pending', 'processing', 'failed', 'dead', 'completed', 'tombstone'];

const fileOf = (place: Place, fp = 'fp1'): DiscoveredFile => ({ fileUrl: `/inbox/${place}`, fileType: 'csv', mtimeMs: T0 - 1_000, size: 10, fingerprint: fp });
const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 5 };

interface Row {
  url: string;
  place: Place;
  /** The token of the row's last claim, or one that never held it. */
  token: string;
}

type Driver = (s: CheckpointStore, rows: readonly Row[]) => Promise<unknown>;

/** One store call per operation; discover and reversion are the same call (new content at a path). */
const discoverChanged: Driver = (s, rows) => s.discover(rows.map((r) => fileOf(r.place, 'fp2')), NOW);
const DRIVERS: Record<Operation, Driver> = {
  discover: discoverChanged,
  reversion: discoverChanged,
  claim: async (s, rows) => {
    for (const r of rows) await s.claimFile(r.url, { workerId: 'host-b:2', leaseMs: LEASE, now: NOW });
  },
  sweep: (s) => s.claimFile('/inbox/not-there', { workerId: 'host-b:2', leaseMs: LEASE, now: SWEEP_AT }),
  complete: (s, rows) => s.complete(rows.map((r) => ({ fileUrl: r.url, token: r.token, stats, now: NOW }))),
  fail: async (s, rows) => {
    for (const r of rows) await s.fail({ fileUrl: r.url, token: r.token, error: 'boom', permanent: false, now: NOW, durationMs: 5 });
  },
  release: (s, rows) => s.release(rows.map((r) => ({ fileUrl: r.url, token: r.token })), NOW),
  requeue: (s, rows) => s.requeue({ files: rows.map((r) => r.url), now: NOW }),
  purge: (s) => s.purge({ olderThanMs: 1, statuses: ['completed', 'dead'], now: NOW }),
  revive: async (s, rows) => {
    for (const r of rows) await s.revive(fileOf(r.place), { now: NOW });
  },
  expire: (s) => s.expireTombstones({ olderThanMs: 1, now: NOW }),
};

/** A row in each place. The tombstone's row is purged before the others exist (purge takes every old enough row). */
async function setUp(s: CheckpointStore): Promise<Row[]> {
  const rows: Row[] = [];
  const tomb = fileOf('tombstone');
  await s.discover([tomb], T0);
  const tc = (await s.claimFile(tomb.fileUrl, { workerId: W, leaseMs: LEASE, now: T0 + 1 }))!;
  await s.complete([{ fileUrl: tomb.fileUrl, token: tc.token, stats, now: T0 + 2 }]);
  expect(await s.purge({ olderThanMs: 5, statuses: ['completed'], now: T0 + 10 })).toBe(1);
  rows.push({ url: tomb.fileUrl, place: 'tombstone', token: tc.token });
  rows.push({ url: fileOf('absent').fileUrl, place: 'absent', token: 'never-held' });
  const held = ['processing', 'failed', 'dead', 'completed'] as const;
  await s.discover([fileOf('pending'), ...held.map((p) => fileOf(p))], T0 + 20);
  rows.push({ url: fileOf('pending').fileUrl, place: 'pending', token: 'never-held' });
  for (const place of held) {
    const url = fileOf(place).fileUrl;
    const c = (await s.claimFile(url, { workerId: W, leaseMs: LEASE, now: T0 + 21 }))!;
    if (place === 'completed') await s.complete([{ fileUrl: url, token: c.token, stats, now: T0 + 22 }]);
    if (place === 'failed' || place === 'dead') {
      await s.fail({ fileUrl: url, token: c.token, error: 'setup', permanent: place === 'dead', now: T0 + 22, durationMs: 1 });
    }
    rows.push({ url, place, token: c.token });
  }
  expect(rows.map((r) => r.place).sort()).toEqual([...PLACES].sort());
  for (const r of rows) expect(await placeOf(s, r.url), r.url).toBe(r.place);
  return rows;
}

async function placeOf(s: CheckpointStore, url: string): Promise<Place> {
  const rec = await s.get(url);
  if (rec) return rec.status;
  return (await s.tombstone(url)) ? 'tombstone' : 'absent';
}

/** Where a row in `place` may end after `driver`: every `to` of a transition it drives from there, else `place`. */
function allowed(driver: Driver, place: Place): Place[] {
  const ts = TRANSITIONS.filter((t) => DRIVERS[t.op] === driver && t.from.includes(place));
  return ts.length === 0 ? [place] : ts.flatMap((t) => [...t.to]);
}

export function runTransitionsContract(make: () => Promise<CheckpointStore>): void {
  describe('the transition table (src/store/rules/transitions.ts)', () => {
    for (const op of Object.keys(DRIVERS) as Operation[]) {
      it(`${op}: every row moves as the table says, or not at all`, async () => {
        const s = await make();
        const rows = await setUp(s);
        await DRIVERS[op](s, rows);
        const seen: Record<string, Place> = {};
        const want: Record<string, Place[]> = {};
        for (const r of rows) {
          const now = await placeOf(s, r.url);
          seen[r.place] = now;
          want[r.place] = allowed(DRIVERS[op], r.place);
          expect(want[r.place], `${op} from ${r.place} ended ${now}`).toContain(now);
        }
        // Every transition of this operation was taken at least once.
        for (const t of TRANSITIONS.filter((x) => x.op === op)) {
          expect(t.from.some((f) => seen[f] !== f && t.to.includes(seen[f]!)), `${t.op}: ${t.from.join('|')} -> ${t.to.join('|')}`).toBe(true);
        }
      });
    }
  });
}
