/**
 * The contract every CheckpointStore implementation must keep. Each implementation's test file
 * calls runStoreContract() with a factory; the same assertions then hold for SQLite, the
 * in-memory fallback and PostgreSQL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckpointStore, DiscoveredFile, ExpiredClaim, RetryPolicy } from '../../src/store/types.js';
import { runTransitionsContract } from './transitions-contract.js';

export interface StoreFactoryOptions {
  retry?: RetryPolicy;
  onChange?: 'reprocess' | 'ignore';
  /** Jitter source; the contract pins it so backoff is predictable. */
  random?: () => number;
}

export type StoreFactory = (opts: StoreFactoryOptions) => Promise<CheckpointStore>;

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const LEASE = 30_000;
const W1 = 'host-a:1';
const W2 = 'host-b:2';

export function file(name: string, fp = 'fp1', type = 'csv'): DiscoveredFile {
  return { fileUrl: `/inbox/${name}`, fileType: type, mtimeMs: T0 - 1000, size: 10, fingerprint: fp };
}

export function runStoreContract(name: string, make: StoreFactory): void {
  describe(`store contract: ${name}`, () => {
    const open: CheckpointStore[] = [];
    const mk = async (opts: StoreFactoryOptions = {}) => {
      const s = await make({ random: () => 0.5, ...opts });
      open.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
    });
    const claimOpts = (now: number, workerId = W1, onExpired?: (e: readonly ExpiredClaim[]) => void) => ({
      workerId,
      leaseMs: LEASE,
      now,
      ...(onExpired ? { onExpired } : {}),
    });

    runTransitionsContract(() => mk());

    it('discovers idempotently and counts by status', async () => {
      const s = await mk();
      const r1 = await s.discover([file('a'), file('b'), file('c')], T0);
      expect(r1).toEqual({ inserted: 3, reversioned: 0, unchanged: 0, tombstoned: 0 });
      const r2 = await s.discover([file('a'), file('b')], T0 + 1);
      expect(r2).toEqual({ inserted: 0, reversioned: 0, unchanged: 2, tombstoned: 0 });
      expect(await s.counts()).toEqual({ pending: 3, processing: 0, completed: 0, failed: 0, dead: 0 });
      const rec = await s.get('/inbox/a');
      expect(rec).toMatchObject({ status: 'pending', fileType: 'csv', version: 1, attempts: 0, retryCount: 0, fingerprint: 'fp1' });
      expect(rec!.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    });

    it('claims in batches, first in first out, never the same file twice', async () => {
      const s = await mk();
      await s.discover([file('1')], T0);
      await s.discover([file('2')], T0 + 1);
      await s.discover([file('3')], T0 + 2);
      const first = await s.claim(2, claimOpts(T0 + 10));
      expect(first.map((c) => c.fileUrl)).toEqual(['/inbox/1', '/inbox/2']);
      const second = await s.claim(5, claimOpts(T0 + 11, W2));
      expect(second.map((c) => c.fileUrl)).toEqual(['/inbox/3']);
      expect(await s.claim(5, claimOpts(T0 + 12))).toEqual([]);
      const tokens = new Set([...first, ...second].map((c) => c.token));
      expect(tokens.size).toBe(3);
      expect(first[0]).toMatchObject({ attempt: 1, retryCount: 0, version: 1, leaseExpiresAt: T0 + 10 + LEASE });
      expect(first[0]!.idempotencyKey).toMatch(/^[0-9a-f]{32}$/);
      const rec = await s.get('/inbox/1');
      expect(rec).toMatchObject({ status: 'processing', processedBy: W1, attempts: 1 });
    });

    it('claims only the file types a route asks for, or all but them, oldest first', async () => {
      const s = await mk();
      await s.discover([file('a1', 'fp', 'a')], T0);
      await s.discover([file('b1', 'fp', 'b')], T0 + 1);
      await s.discover([file('a2', 'fp', 'a')], T0 + 2);
      await s.discover([file('c1', 'fp', 'c')], T0 + 3);
      await s.discover([file('b2', 'fp', 'b')], T0 + 4);
      const onlyB = await s.claim(5, { ...claimOpts(T0 + 10), fileTypes: { types: ['b'] } });
      expect(onlyB.map((c) => c.fileUrl)).toEqual(['/inbox/b1', '/inbox/b2']);
      const notA = await s.claim(5, { ...claimOpts(T0 + 10), fileTypes: { types: ['a'], except: true } });
      expect(notA.map((c) => c.fileUrl)).toEqual(['/inbox/c1']);
      expect(await s.claim(5, { ...claimOpts(T0 + 10), fileTypes: { types: ['b', 'c'] } })).toEqual([]);
      const one = await s.claim(1, { ...claimOpts(T0 + 10), fileTypes: { types: ['a', 'x'] } });
      expect(one.map((c) => c.fileUrl)).toEqual(['/inbox/a1']);
      expect((await s.claim(5, claimOpts(T0 + 10))).map((c) => c.fileUrl)).toEqual(['/inbox/a2']);
    });

    it('a failure under a policy of its own (a route\'s retry) retries and dead-letters by that policy', async () => {
      const s = await mk({ retry: { maxRetries: 5, baseDelayMs: 1000, maxDelayMs: 1000 }, random: () => 0.999 });
      await s.discover([file('a')], T0);
      const route = { maxRetries: 1, baseDelayMs: 10_000, maxDelayMs: 10_000 };
      const [c1] = await s.claim(1, claimOpts(T0));
      expect(await s.fail({ fileUrl: c1!.fileUrl, token: c1!.token, error: 'one', permanent: false, now: T0, durationMs: 1, retry: route })).toBe('failed');
      // floor(0.999 * 10000): the route's delay, not the store's 1000 ms.
      expect(Date.parse((await s.get('/inbox/a'))!.dueAt!)).toBe(T0 + 9990);
      const [c2] = await s.claim(1, claimOpts(T0 + 9990));
      expect(await s.fail({ fileUrl: c2!.fileUrl, token: c2!.token, error: 'two', permanent: false, now: T0 + 9990, durationMs: 1, retry: route })).toBe('dead');
    });

    it('an expired lease is swept under the retry policy of its route (chosen by file type)', async () => {
      const s = await mk({ retry: { maxRetries: 5, baseDelayMs: 1000, maxDelayMs: 1000 } });
      await s.discover([file('a', 'fp', 'strict'), file('b', 'fp', 'lax')], T0);
      expect(await s.claim(2, claimOpts(T0))).toHaveLength(2);
      const seen: ExpiredClaim[] = [];
      const strict = { retry: { maxRetries: 0, baseDelayMs: 0, maxDelayMs: 0 }, deadAfterAction: 'keep' };
      const routeOf = (t: string) => (t === 'strict' ? strict : undefined);
      await s.claim(5, { ...claimOpts(T0 + LEASE + 1, W2, (e) => seen.push(...e)), routeOf });
      expect(seen.map((e) => [e.fileUrl, e.status]).sort()).toEqual([
        ['/inbox/a', 'dead'],
        ['/inbox/b', 'failed'],
      ]);
      expect((await s.get('/inbox/a'))!.status).toBe('dead');
      expect((await s.get('/inbox/b'))!.status).toBe('failed');
    });

    it('does not hand out a file whose ready time is in the future', async () => {
      const s = await mk();
      await s.discover([file('later')], T0 + 5_000);
      expect(await s.claim(1, claimOpts(T0))).toEqual([]);
      expect(await s.claim(1, claimOpts(T0 + 5_000))).toHaveLength(1);
    });

    it('completes once with the token and records stats and the attempt', async () => {
      const s = await mk();
      await s.discover([file('a')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      const stats = { totalRows: 10, filteredRows: 2, persistedRows: 8, durationMs: 42 };
      expect(await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 50, afterAction: 'keep' }])).toEqual(['ok']);
      expect(await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 60 }])).toEqual(['lost']);
      const rec = await s.get(c!.fileUrl);
      expect(rec).toMatchObject({ status: 'completed', recordsTotal: 10, recordsFiltered: 2, recordsPersisted: 8, processingTimeMs: 42, errorMessage: null, afterAction: 'keep' });
      expect(rec!.completedAt).toBe(new Date(T0 + 50).toISOString());
      const att = await s.attempts(c!.fileUrl);
      expect(att).toHaveLength(1);
      expect(att[0]).toMatchObject({ attempt: 1, workerId: W1, outcome: 'completed', durationMs: 42, afterAction: 'keep' });
      // A completed file is never handed out again.
      expect(await s.claim(10, claimOpts(T0 + 10 * LEASE))).toEqual([]);
      expect(await s.claimFile(c!.fileUrl, claimOpts(T0 + 10 * LEASE))).toBeNull();
    });

    it('a wrong token changes nothing', async () => {
      const s = await mk();
      await s.discover([file('a')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      const bad = { fileUrl: c!.fileUrl, token: `${c!.token}x` };
      const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 };
      expect(await s.complete([{ ...bad, stats, now: T0 + 1 }])).toEqual(['lost']);
      expect(await s.fail({ ...bad, error: 'x', permanent: false, now: T0 + 1, durationMs: 1 })).toBe('lost');
      expect(await s.heartbeat([bad], LEASE, T0 + 1)).toEqual([bad]);
      expect(await s.release([bad], T0 + 1)).toEqual(['lost']);
      expect(await s.setHandlerPid(bad, 123)).toBe('lost');
      expect(await s.get(c!.fileUrl)).toMatchObject({ status: 'processing', claimToken: c!.token, handlerPid: null });
    });

    it('takes over an expired lease; the old holder can no longer complete, fail, extend, release or record a pid', async () => {
      const s = await mk({ retry: { maxRetries: 3, baseDelayMs: 1000, maxDelayMs: 60_000 } });
      await s.discover([file('a')], T0);
      const [old] = await s.claim(1, claimOpts(T0, W1));
      expect(await s.setHandlerPid(old!, 4242)).toBe('ok');
      // Within the lease nobody else gets it.
      expect(await s.claim(1, claimOpts(T0 + LEASE - 1, W2))).toEqual([]);
      const seen: ExpiredClaim[] = [];
      // Past the lease: the sweep marks it failed (counted), with backoff (random 0.5 -> 500 ms).
      expect(await s.claim(1, claimOpts(T0 + LEASE, W2, (e) => seen.push(...e)))).toEqual([]);
      expect(seen).toEqual([
        { fileUrl: '/inbox/a', version: 1, attempt: 1, token: old!.token, workerId: W1, handlerPid: 4242, status: 'failed' },
      ]);
      const rec = await s.get('/inbox/a');
      expect(rec).toMatchObject({ status: 'failed', retryCount: 1 });
      expect(rec!.errorMessage).toMatch(/lease expired/);
      const [taken] = await s.claim(1, claimOpts(T0 + LEASE + 500, W2));
      expect(taken).toMatchObject({ fileUrl: '/inbox/a', attempt: 2, retryCount: 1 });
      const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 };
      const t = T0 + LEASE + 600;
      expect(await s.complete([{ fileUrl: old!.fileUrl, token: old!.token, stats, now: t }])).toEqual(['lost']);
      expect(await s.fail({ fileUrl: old!.fileUrl, token: old!.token, error: 'late', permanent: true, now: t, durationMs: 1 })).toBe('lost');
      expect(await s.heartbeat([old!], LEASE, t)).toHaveLength(1);
      expect(await s.release([old!], t)).toEqual(['lost']);
      expect(await s.setHandlerPid(old!, 1)).toBe('lost');
      expect(await s.complete([{ fileUrl: taken!.fileUrl, token: taken!.token, stats, now: t }])).toEqual(['ok']);
      const att = await s.attempts('/inbox/a');
      expect(att.map((a) => [a.attempt, a.workerId, a.outcome])).toEqual([
        [1, W1, 'lease_expired'],
        [2, W2, 'completed'],
      ]);
    });

    it('heartbeats keep a lease alive', async () => {
      const s = await mk();
      await s.discover([file('a')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      expect(await s.heartbeat([c!], LEASE, T0 + LEASE - 1)).toEqual([]);
      expect(await s.claim(1, claimOpts(T0 + LEASE + 1, W2))).toEqual([]);
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'processing', claimToken: c!.token });
    });

    it('retries with exponential backoff and full jitter, then dead-letters', async () => {
      const policy = { maxRetries: 2, baseDelayMs: 1000, maxDelayMs: 3000 };
      const s = await mk({ retry: policy, random: () => 0.999 });
      await s.discover([file('a')], T0);
      let now = T0;
      const dues: number[] = [];
      for (let run = 1; run <= 3; run++) {
        const [c] = await s.claim(1, claimOpts(now));
        expect(c).toMatchObject({ attempt: run, retryCount: run - 1 });
        const res = await s.fail({ fileUrl: c!.fileUrl, token: c!.token, error: `boom ${run}`, permanent: false, now, durationMs: 5 });
        expect(res).toBe(run <= 2 ? 'failed' : 'dead');
        const rec = await s.get('/inbox/a');
        if (run <= 2) {
          const due = Date.parse(rec!.dueAt!);
          dues.push(due - now);
          // Not claimable before it is due.
          expect(await s.claim(1, claimOpts(due - 1))).toEqual([]);
          now = due;
        } else {
          expect(rec).toMatchObject({ status: 'dead', retryCount: 3, errorMessage: 'boom 3', dueAt: null });
        }
      }
      // floor(0.999 * min(3000, 1000 * 2^(n-1))): 999, then 1998.
      expect(dues).toEqual([999, 1998]);
      expect(await s.claim(1, claimOpts(now + 10 * 3000))).toEqual([]);
      expect((await s.attempts('/inbox/a')).map((a) => a.outcome)).toEqual(['failed', 'failed', 'failed']);
    });

    it('a permanent failure is dead at once; requeue gives it a fresh budget', async () => {
      const s = await mk();
      await s.discover([file('a'), file('b', 'fp', 'json')], T0);
      const cs = await s.claim(2, claimOpts(T0));
      for (const c of cs) {
        expect(await s.fail({ fileUrl: c.fileUrl, token: c.token, error: 'bad data', permanent: true, now: T0, durationMs: 1 })).toBe('dead');
      }
      expect((await s.counts()).dead).toBe(2);
      expect(await s.requeue({ dead: true, fileType: 'json', now: T0 + 1 })).toBe(1);
      expect(await s.get('/inbox/b')).toMatchObject({ status: 'pending', retryCount: 0, errorMessage: null });
      expect(await s.requeue({ files: ['/inbox/a', '/inbox/nope'], now: T0 + 2 })).toBe(1);
      const again = await s.claim(5, claimOpts(T0 + 3));
      expect(again.map((c) => [c.fileUrl, c.attempt]).sort()).toEqual([
        ['/inbox/a', 2],
        ['/inbox/b', 2],
      ]);
      // Completed files are not requeued: completed at most once.
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      await s.complete(again.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats, now: T0 + 4 })));
      expect(await s.requeue({ files: ['/inbox/a'], dead: true, now: T0 + 5 })).toBe(0);
    });

    it('release gives a file back without counting an attempt against the budget', async () => {
      const s = await mk();
      await s.discover([file('a')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      expect(await s.release([c!], T0 + 5)).toEqual(['ok']);
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'pending', retryCount: 0 });
      const [c2] = await s.claim(1, claimOpts(T0 + 6, W2));
      expect(c2).toMatchObject({ attempt: 2, retryCount: 0 });
      expect((await s.attempts('/inbox/a')).map((a) => a.outcome)).toEqual(['released']);
    });

    it('a changed fingerprint makes a handled file a new version (policy reprocess)', async () => {
      const s = await mk();
      await s.discover([file('a', 'v1')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      const stats = { totalRows: 3, filteredRows: 0, persistedRows: 3, durationMs: 1 };
      await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 1 }]);
      expect(await s.discover([file('a', 'v1')], T0 + 2)).toMatchObject({ unchanged: 1 });
      expect(await s.discover([file('a', 'v2')], T0 + 3)).toMatchObject({ reversioned: 1 });
      const rec = await s.get('/inbox/a');
      expect(rec).toMatchObject({ status: 'pending', version: 2, attempts: 0, recordsTotal: 0, fingerprint: 'v2' });
      const [c2] = await s.claim(1, claimOpts(T0 + 4));
      expect(c2).toMatchObject({ version: 2, attempt: 1 });
      expect(c2!.idempotencyKey).not.toBe(c!.idempotencyKey);
    });

    it('a completion records the fingerprint the handler actually read', async () => {
      const s = await mk();
      await s.discover([file('a', 'v1')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 1, fingerprint: 'v2' }]);
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'completed', version: 1, fingerprint: 'v2' });
      expect(await s.discover([file('a', 'v2')], T0 + 2)).toMatchObject({ unchanged: 1, reversioned: 0 });
    });

    it('a failure records the fingerprint the handler actually read, so that content is not a new version', async () => {
      const s = await mk();
      await s.discover([file('a', 'v1'), file('b', 'v1')], T0);
      const [ca, cb] = await s.claim(2, claimOpts(T0));
      expect(await s.fail({ fileUrl: ca!.fileUrl, token: ca!.token, error: 'bad data', permanent: true, now: T0 + 1, durationMs: 1, fingerprint: 'v2' })).toBe('dead');
      expect(await s.fail({ fileUrl: cb!.fileUrl, token: cb!.token, error: 'sink down', permanent: false, now: T0 + 1, durationMs: 1, fingerprint: 'v2' })).toBe('failed');
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'dead', version: 1, fingerprint: 'v2' });
      expect(await s.get('/inbox/b')).toMatchObject({ status: 'failed', version: 1, fingerprint: 'v2' });
      expect(await s.discover([file('a', 'v2'), file('b', 'v2')], T0 + 2)).toMatchObject({ unchanged: 2, reversioned: 0 });
    });

    it('policy ignore never re-runs a handled file; a pending file just takes the new fingerprint', async () => {
      const s = await mk({ onChange: 'ignore' });
      await s.discover([file('a', 'v1'), file('b', 'v1')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 1 }]);
      expect(await s.discover([file('a', 'v2'), file('b', 'v2')], T0 + 2)).toMatchObject({ reversioned: 0, unchanged: 2 });
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'completed', version: 1, fingerprint: 'v1' });
      expect(await s.get('/inbox/b')).toMatchObject({ status: 'pending', version: 1, fingerprint: 'v2' });
    });

    it('a policy given to one discover call overrides the store\'s, for rows and tombstones', async () => {
      const s = await mk();
      await s.discover([file('a', 'v1'), file('b', 'v1')], T0);
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      for (const c of await s.claim(2, claimOpts(T0))) await s.complete([{ fileUrl: c.fileUrl, token: c.token, stats, now: T0 + 1 }]);
      expect(await s.purge({ olderThanMs: 0, statuses: ['completed'], now: T0 + 2 })).toBe(2);
      await s.discover([file('c', 'v1')], T0 + 3);
      const [c] = await s.claim(1, claimOpts(T0 + 3));
      await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 4 }]);
      const changed = [file('a', 'v2'), file('c', 'v2')];
      expect(await s.discover(changed, T0 + 5, { onChange: 'ignore' })).toMatchObject({ reversioned: 0, inserted: 0, tombstoned: 1, unchanged: 1 });
      expect(await s.get('/inbox/c')).toMatchObject({ status: 'completed', version: 1, fingerprint: 'v1' });
      expect(await s.claim(5, claimOpts(T0 + 6))).toEqual([]);
      // The store's own policy (reprocess) still holds for calls that do not say otherwise.
      expect(await s.discover(changed, T0 + 7)).toMatchObject({ reversioned: 1, inserted: 1 });
      const ignoring = await mk({ onChange: 'ignore' });
      await ignoring.discover([file('d', 'v1')], T0);
      const [d] = await ignoring.claim(1, claimOpts(T0));
      await ignoring.complete([{ fileUrl: d!.fileUrl, token: d!.token, stats, now: T0 + 1 }]);
      expect(await ignoring.discover([file('d', 'v2')], T0 + 2, { onChange: 'reprocess' })).toMatchObject({ reversioned: 1 });
    });

    it('purge leaves tombstones: a purged file still in the folder is not handled again', async () => {
      const s = await mk();
      await s.discover([file('old', 'v1'), file('dead', 'v1'), file('new', 'v1')], T0);
      const cs = await s.claim(3, claimOpts(T0));
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      for (const c of cs) {
        if (c.fileUrl === '/inbox/dead') await s.fail({ fileUrl: c.fileUrl, token: c.token, error: 'x', permanent: true, now: T0, durationMs: 0 });
        else if (c.fileUrl === '/inbox/old') await s.complete([{ fileUrl: c.fileUrl, token: c.token, stats, now: T0 }]);
        else await s.complete([{ fileUrl: c.fileUrl, token: c.token, stats, now: T0 + 100_000 }]);
      }
      const purged = await s.purge({ olderThanMs: 50_000, statuses: ['completed', 'dead'], now: T0 + 100_000 });
      expect(purged).toBe(2);
      expect(await s.get('/inbox/old')).toBeNull();
      expect(await s.attempts('/inbox/old')).toEqual([]);
      expect(await s.get('/inbox/new')).toMatchObject({ status: 'completed' });
      expect(await s.discover([file('old', 'v1'), file('dead', 'v1')], T0 + 200_000)).toMatchObject({ tombstoned: 2, inserted: 0 });
      expect(await s.claim(5, claimOpts(T0 + 200_000))).toEqual([]);
      // Overwritten after the purge: a new version.
      expect(await s.discover([file('old', 'v2')], T0 + 300_000)).toMatchObject({ inserted: 1 });
      expect(await s.get('/inbox/old')).toMatchObject({ status: 'pending', version: 2 });
    });

    it('purge with a limit takes at most that many rows per call, and the rest on the next calls', async () => {
      const s = await mk();
      const names = ['a', 'b', 'c', 'd', 'e'];
      await s.discover(names.map((n) => file(n)), T0);
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      for (const c of await s.claim(5, claimOpts(T0))) await s.complete([{ fileUrl: c.fileUrl, token: c.token, stats, now: T0 }]);
      const q = { olderThanMs: 1_000, statuses: ['completed'] as const, now: T0 + 10_000, limit: 2 };
      expect([await s.purge(q), await s.purge(q), await s.purge(q), await s.purge(q)]).toEqual([2, 2, 1, 0]);
      for (const n of names) {
        expect(await s.get(`/inbox/${n}`)).toBeNull();
        expect(await s.tombstone(`/inbox/${n}`)).toMatchObject({ status: 'completed', fingerprint: 'fp1' });
        expect(await s.attempts(`/inbox/${n}`)).toEqual([]);
      }
    });

    it('expireTombstones deletes the tombstones of purges before the cut-off; that file then counts as new', async () => {
      const s = await mk();
      await s.discover([file('early'), file('late')], T0);
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      for (const c of await s.claim(2, claimOpts(T0))) await s.complete([{ fileUrl: c.fileUrl, token: c.token, stats, now: T0 }]);
      expect(await s.purge({ olderThanMs: 0, statuses: ['completed'], now: T0 + 1_000, limit: 1 })).toBe(1);
      const [first, second] = (await s.tombstone('/inbox/early')) ? ['early', 'late'] : ['late', 'early'];
      expect(await s.purge({ olderThanMs: 0, statuses: ['completed'], now: T0 + 50_000 })).toBe(1);
      // Tombstones purged before T0 + 20 s: only the first purge's.
      expect(await s.expireTombstones({ olderThanMs: 30_000, now: T0 + 50_000, limit: 10 })).toBe(1);
      expect(await s.tombstone(`/inbox/${first}`)).toBeNull();
      expect(await s.tombstone(`/inbox/${second}`)).not.toBeNull();
      expect(await s.expireTombstones({ olderThanMs: 30_000, now: T0 + 50_000 })).toBe(0);
      expect(await s.discover([file(first), file(second)], T0 + 60_000)).toMatchObject({ inserted: 1, tombstoned: 1 });
      expect(await s.get(`/inbox/${first}`)).toMatchObject({ status: 'pending', version: 1 });
    });

    it('a requeue is written to the history (who, where the file came back from) and counts as no outcome', async () => {
      const s = await mk();
      await s.discover([file('a'), file('b')], T0);
      for (const c of await s.claim(2, claimOpts(T0))) {
        await s.fail({ fileUrl: c.fileUrl, token: c.token, error: 'bad data', permanent: true, now: T0 + 1, durationMs: 1, deadAfterAction: 'move:/dead' });
      }
      const movedBack = new Map([['/inbox/a', '/dead/a']]);
      expect(await s.requeue({ files: ['/inbox/a'], dead: true, now: T0 + 10, by: 'ckpt retry (op)', movedBack })).toBe(2);
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'pending', afterAction: null, errorMessage: null });
      const history = await s.attempts('/inbox/a');
      expect(history.map((a) => [a.attempt, a.outcome, a.errorMessage, a.afterAction])).toEqual([
        [1, 'dead', 'bad data', 'move:/dead'],
        [1, 'requeued', null, 'moved back from /dead/a'],
      ]);
      expect(history[1]).toMatchObject({ workerId: 'ckpt retry (op)', startedAt: new Date(T0 + 10).toISOString(), endedAt: null, durationMs: null });
      expect((await s.attempts('/inbox/b')).map((a) => [a.outcome, a.afterAction])).toEqual([['dead', 'move:/dead'], ['requeued', null]]);
      // The two dead attempts are the only failures; the requeues are none.
      expect(await s.stats(T0 + 20)).toMatchObject({ failedLastMinute: 2, failedLastHour: 2 });
      const [again] = await s.claim(1, claimOpts(T0 + 30));
      expect(again).toMatchObject({ attempt: 2 });
    });

    it('records where the after-action left the file on the history row of that attempt only', async () => {
      const s = await mk({ retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 10 } });
      await s.discover([file('a')], T0);
      const [c1] = await s.claim(1, claimOpts(T0));
      await s.fail({ fileUrl: c1!.fileUrl, token: c1!.token, error: 'x', permanent: false, now: T0 + 1, durationMs: 1, deadAfterAction: 'move:/dead' });
      const [c2] = await s.claim(1, claimOpts(T0 + 1_000));
      await s.fail({ fileUrl: c2!.fileUrl, token: c2!.token, error: 'y', permanent: false, now: T0 + 1_001, durationMs: 1, deadAfterAction: 'move:/dead' });
      await s.recordAfterAction({ fileUrl: '/inbox/a', token: c2!.token, done: 'moved to /dead/a.1' });
      // A token that ended nothing changes nothing.
      await s.recordAfterAction({ fileUrl: '/inbox/a', token: 'no-such-token', done: 'moved to /elsewhere' });
      expect((await s.attempts('/inbox/a')).map((a) => [a.attempt, a.outcome, a.afterAction])).toEqual([
        [1, 'failed', null],
        [2, 'failed', 'moved to /dead/a.1'],
      ]);
      expect((await s.get('/inbox/a'))?.status).toBe('dead');
    });

    it('tells a purged file by its tombstone, and revive lets it run again as the next version', async () => {
      const s = await mk();
      await s.discover([file('a', 'v1')], T0);
      const [c] = await s.claim(1, claimOpts(T0));
      await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 }, now: T0 + 1 }]);
      expect(await s.tombstone('/inbox/a')).toBeNull();
      expect(await s.revive(file('a', 'v1'), { now: T0 + 2 })).toBeNull();
      expect(await s.purge({ olderThanMs: 1_000, statuses: ['completed'], now: T0 + 10_000 })).toBe(1);
      const purgedAt = new Date(T0 + 10_000).toISOString();
      expect(await s.tombstone('/inbox/a')).toEqual({ fileUrl: '/inbox/a', fingerprint: 'v1', version: 1, status: 'completed', purgedAt });
      expect(await s.discover([file('a', 'v1')], T0 + 11_000)).toMatchObject({ tombstoned: 1 });

      expect(await s.revive(file('a', 'v1'), { now: T0 + 12_000, by: 'ckpt retry (op)' })).toMatchObject({ version: 1, purgedAt });
      expect(await s.tombstone('/inbox/a')).toBeNull();
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'pending', version: 2, attempts: 0, fingerprint: 'v1' });
      expect((await s.attempts('/inbox/a')).map((a) => [a.version, a.outcome, a.workerId, a.afterAction])).toEqual([
        [2, 'requeued', 'ckpt retry (op)', `tombstone lifted (purged ${purgedAt} as completed)`],
      ]);
      // Once: the same file seen again is the row now, not the tombstone.
      expect(await s.discover([file('a', 'v1')], T0 + 13_000)).toMatchObject({ unchanged: 1, tombstoned: 0 });
      expect(await s.revive(file('a', 'v1'), { now: T0 + 14_000 })).toBeNull();
      const [again] = await s.claim(1, claimOpts(T0 + 15_000));
      expect(again).toMatchObject({ fileUrl: '/inbox/a', version: 2, attempt: 1 });
    });

    it('claims one named file', async () => {
      const s = await mk();
      await s.discover([file('a'), file('b')], T0);
      const c = await s.claimFile('/inbox/b', claimOpts(T0));
      expect(c).toMatchObject({ fileUrl: '/inbox/b', attempt: 1 });
      expect(await s.claimFile('/inbox/b', claimOpts(T0, W2))).toBeNull();
      expect(await s.claimFile('/inbox/missing', claimOpts(T0))).toBeNull();
    });

    it('an expired lease with the budget spent goes dead', async () => {
      const s = await mk({ retry: { maxRetries: 0, baseDelayMs: 10, maxDelayMs: 10 } });
      await s.discover([file('a')], T0);
      await s.claim(1, claimOpts(T0));
      const seen: ExpiredClaim[] = [];
      await s.claim(1, claimOpts(T0 + LEASE, W2, (e) => seen.push(...e)));
      expect(seen.map((e) => e.status)).toEqual(['dead']);
      expect(await s.get('/inbox/a')).toMatchObject({ status: 'dead' });
    });

    it('lists by status and type, paged', async () => {
      const s = await mk();
      await s.discover([file('a'), file('b'), file('c', 'x', 'json')], T0);
      const [c] = await s.claimFile('/inbox/a', claimOpts(T0)).then((x) => [x]);
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats, now: T0 + 1 }]);
      expect((await s.list({ status: 'pending' })).map((r) => r.fileUrl)).toEqual(['/inbox/b', '/inbox/c']);
      expect((await s.list({ fileType: 'json' })).map((r) => r.fileUrl)).toEqual(['/inbox/c']);
      const page1 = await s.list({ limit: 2 });
      const page2 = await s.list({ limit: 2, after: page1[1]!.fileUrl });
      expect([...page1, ...page2].map((r) => r.fileUrl)).toEqual(['/inbox/a', '/inbox/b', '/inbox/c']);
    });

    it('reports stats: counts, oldest pending, outcomes in the last minute and hour', async () => {
      const s = await mk();
      await s.discover([file('a')], T0);
      await s.discover([file('b')], T0 + 10);
      await s.discover([file('c')], T0 + 20);
      const cs = await s.claim(2, claimOpts(T0 + 100));
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      await s.complete([{ fileUrl: cs[0]!.fileUrl, token: cs[0]!.token, stats, now: T0 + 200 }]);
      await s.fail({ fileUrl: cs[1]!.fileUrl, token: cs[1]!.token, error: 'x', permanent: true, now: T0 + 120_000, durationMs: 0 });
      const st = await s.stats(T0 + 150_000);
      expect(st.counts).toEqual({ pending: 1, processing: 0, completed: 1, failed: 0, dead: 1 });
      expect(st.oldestPendingAt).toBe(new Date(T0 + 20).toISOString());
      expect(st).toMatchObject({ completedLastMinute: 0, completedLastHour: 1, failedLastMinute: 1, failedLastHour: 1 });
    });

    it('reports activity: rates per window, backlog by folder and type, in-flight files, recent failures', async () => {
      const s = await mk();
      await s.discover([file('a')], T0);
      await s.discover([file('b')], T0 + 10);
      await s.discover([file('sub/c', 'fp1', 'json')], T0 + 20);
      await s.discover([file('d')], T0 + 30);
      await s.discover([file('sub/e', 'fp1', 'json')], T0 + 40);
      const [a, b] = await s.claim(2, claimOpts(T0 + 100));
      const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };
      await s.complete([{ fileUrl: a!.fileUrl, token: a!.token, stats, now: T0 + 200 }]);
      expect((await s.claim(1, claimOpts(T0 + 300, W2)))[0]!.fileUrl).toBe('/inbox/sub/c');
      await s.fail({ fileUrl: b!.fileUrl, token: b!.token, error: 'boom\nsecond line', permanent: false, now: T0 + 20_000, durationMs: 5 });
      expect((await s.claim(1, claimOpts(T0 + 21_000)))[0]!.fileUrl).toBe('/inbox/d');

      const act = await s.activity({ now: T0 + 25_000, windowsMs: [5_000, 60_000], limit: 10 });
      expect(act.windows).toEqual([
        { windowMs: 5_000, discovered: 0, completed: 0, failed: 1 },
        { windowMs: 60_000, discovered: 5, completed: 1, failed: 1 },
      ]);
      // Equal backlogs: by folder, then type.
      expect(act.backlog).toEqual([
        { folder: '/inbox', fileType: 'csv', pending: 0, retrying: 1, oldestPendingAt: null },
        { folder: '/inbox/sub', fileType: 'json', pending: 1, retrying: 0, oldestPendingAt: new Date(T0 + 40).toISOString() },
      ]);
      expect(act.inFlight).toEqual([
        { fileUrl: '/inbox/sub/c', fileType: 'json', workerId: W2, attempt: 1, startedAt: new Date(T0 + 300).toISOString(), leaseExpiresAt: new Date(T0 + 300 + LEASE).toISOString() },
        { fileUrl: '/inbox/d', fileType: 'csv', workerId: W1, attempt: 1, startedAt: new Date(T0 + 21_000).toISOString(), leaseExpiresAt: new Date(T0 + 21_000 + LEASE).toISOString() },
      ]);
      expect(act.failures).toEqual([
        { fileUrl: '/inbox/b', version: 1, attempt: 1, workerId: W1, endedAt: new Date(T0 + 20_000).toISOString(), outcome: 'failed', errorMessage: 'boom\nsecond line' },
      ]);
      // What status shows comes with it (one refresh of `ckpt top` is this one call).
      await s.touchWorker({ workerId: W2, host: 'h', pid: 2, mode: 'normal', modeSince: null, modeReason: null }, T0 + 24_000);
      const withWorker = await s.activity({ now: T0 + 25_000, windowsMs: [60_000], limit: 10 });
      expect(withWorker.stats).toEqual(await s.stats(T0 + 25_000));
      expect(withWorker.stats.counts).toEqual({ pending: 1, processing: 2, completed: 1, failed: 1, dead: 0 });
      expect(withWorker.workers).toEqual(await s.workers());
      expect(withWorker.workers.map((w) => w.workerId)).toEqual([W2]);

      // The limit holds for every list; the largest backlog comes first.
      await s.discover([file('sub/f', 'fp1', 'json')], T0 + 50);
      const one = await s.activity({ now: T0 + 25_000, windowsMs: [], limit: 1 });
      expect(one).toEqual({
        stats: expect.objectContaining({ counts: { pending: 2, processing: 2, completed: 1, failed: 1, dead: 0 } }),
        workers: [expect.objectContaining({ workerId: W2 })],
        windows: [],
        backlog: [expect.objectContaining({ folder: '/inbox/sub', pending: 2 })],
        inFlight: [expect.objectContaining({ fileUrl: '/inbox/sub/c' })],
        failures: [expect.objectContaining({ fileUrl: '/inbox/b' })],
      });
    });

    it('records live workers and their mode', async () => {
      const s = await mk();
      await s.touchWorker({ workerId: W1, host: 'h', pid: 1, mode: 'normal', modeSince: null, modeReason: null }, T0);
      await s.touchWorker({ workerId: W1, host: 'h', pid: 1, mode: 'degraded', modeSince: T0 + 1, modeReason: 'locked' }, T0 + 2);
      expect(await s.workers()).toEqual([
        expect.objectContaining({ workerId: W1, mode: 'degraded', modeReason: 'locked', heartbeatAt: new Date(T0 + 2).toISOString() }),
      ]);
      await s.removeWorker(W1);
      expect(await s.workers()).toEqual([]);
    });
  });
}
