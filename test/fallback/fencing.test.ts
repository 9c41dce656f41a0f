/**
 * Fencing between a degraded worker and the database (src/store/fallback/fencing.ts), with the
 * real sqlite3 shell holding the write lock: a claim carried on under a claim marker past its
 * database lease is not taken over by a normal-mode worker's sweep; a claim whose lease ran out
 * before it was marked cannot be completed; and a file changed after a degraded completion is a
 * new version for the next degraded worker.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClaimMarkers } from '../../src/store/fallback/claim-markers.js';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { selfIdentity } from '../../src/store/fallback/process-identity.js';
import { fingerprintOf } from '../../src/file-identity.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Claim, ClaimRef, ExpiredClaim } from '../../src/store/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { STATS, dbRows, fallbackDirOf, files, holdLock, killShells, markerDirs } from './helpers.js';

const stores: FallbackStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  killShells();
  cleanupTmpDirs();
});

/** probeMs 60 s: a degraded store stays degraded until the test calls tryRecover(). */
function open(db: string, workerId: string, probeMs = 60_000): FallbackStore {
  const s = new FallbackStore(db, { lockTimeoutMs: 300, busyTimeoutMs: 20, fallback: { workerId, probeMs, snapshotMs: 0 } });
  stores.push(s);
  return s;
}

/** Like open(), with retries due at once (1 ms backoff). */
function openRetryingAtOnce(db: string, workerId: string): FallbackStore {
  const s = new FallbackStore(db, { lockTimeoutMs: 300, busyTimeoutMs: 20, retry: { maxRetries: 3, baseDelayMs: 1, maxDelayMs: 1 }, fallback: { workerId, probeMs: 60_000, snapshotMs: 0 } });
  stores.push(s);
  return s;
}

/**
 * `a` recovers right after `b`'s next database claim commits, before `b` screens it for
 * markers: the interleaving of two processes that the soak found, made exact.
 */
function recoverRightAfterClaimOf(b: FallbackStore, a: FallbackStore): void {
  const primary = (b as unknown as { primary: SqliteStore }).primary;
  const claimInDb = primary.claim.bind(primary);
  primary.claim = async (n, opts) => {
    const got = await claimInDb(n, opts);
    expect(await a.tryRecover()).toBe(true);
    return got;
  };
}

/**
 * A (retries due at once) and B on one database: A claims its one file while the sqlite3 shell
 * holds the write lock, fails it there (retryable), and the lock is let go. A stays degraded.
 */
async function failedByADegraded(prefix: string): Promise<{ db: string; a: FallbackStore; b: FallbackStore }> {
  const db = path.join(tmpDir(), 'ckpt.db');
  const a = openRetryingAtOnce(db, 'A');
  const b = open(db, 'B');
  await a.discover(files(prefix, 1), Date.now());
  const shell = await holdLock(db, 'begin-exclusive');
  const [ca] = await a.claim(1, W('A'));
  expect(a.mode().mode).toBe('degraded');
  expect(await a.fail({ fileUrl: ca!.fileUrl, token: ca!.token, error: 'told to fail', permanent: false, now: Date.now(), durationMs: 1 })).toBe('failed');
  await shell.release();
  return { db, a, b };
}

/** What the watcher would hand over for a real file now. */
function seenAt(file: string) {
  const st = fs.lstatSync(file);
  return { fileUrl: file, fileType: 'csv', mtimeMs: st.mtimeMs, size: st.size, fingerprint: fingerprintOf(st) };
}

const W = (workerId: string, leaseMs = 30_000) => ({ workerId, leaseMs, now: Date.now() });
const done = (cs: { fileUrl: string; token: string }[], fingerprint?: string) =>
  cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats: STATS, now: Date.now(), ...(fingerprint ? { fingerprint } : {}) }));

describe('fencing a degraded worker against the lease sweep', () => {
  it('a claim carried past its database lease under a marker is not taken over; its completion lands', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    await a.discover(files('t', 1), Date.now());
    const [c] = await a.claim(1, W('A', 3_000));
    const shell = await holdLock(db, 'begin-exclusive');
    // The renewal cannot be written: A degrades and renews under its claim marker instead,
    // past the lease the database last confirmed.
    const lost: ClaimRef[] = [...(await a.heartbeat([c!], 3_000, Date.now()))];
    expect(a.mode().mode).toBe('degraded');
    await waitFor(
      async () => {
        lost.push(...(await a.heartbeat([c!], 3_000, Date.now())));
        return Date.now() > c!.leaseExpiresAt + 300;
      },
      { intervalMs: 400 },
    );
    expect(lost).toEqual([]);
    await shell.release();

    // B, in normal mode: its claim sweeps expired leases, and this one ran out in the database.
    const b = open(db, 'B');
    expect(b.mode().mode).toBe('normal');
    expect(await b.claim(10, W('B'))).toEqual([]);
    expect(b.counters.protectedLeases).toBe(1);
    expect(dbRows(db, 'SELECT status, claim_token FROM file_checkpoints')).toEqual([{ status: 'processing', claim_token: c!.token }]);
    expect(dbRows(db, 'SELECT outcome FROM file_attempts')).toEqual([]);

    // A completes from memory (still degraded); B still leaves the file alone; A replays.
    expect(await a.complete(done([c!]))).toEqual(['ok']);
    expect(await b.claim(10, W('B'))).toEqual([]);
    expect(await a.tryRecover()).toBe(true);
    expect(dbRows(db, 'SELECT status, claim_token FROM file_checkpoints')).toEqual([{ status: 'completed', claim_token: c!.token }]);
    expect(dbRows(db, 'SELECT attempt, worker_id, outcome FROM file_attempts')).toEqual([{ attempt: 1, worker_id: 'A', outcome: 'completed' }]);
    expect(markerDirs(db)).toEqual([]);
  });

  it('a claim whose database lease ran out before the worker went degraded cannot be completed: lost, and retried', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    await a.discover(files('u', 1), Date.now());
    const [c] = await a.claim(1, W('A', 1_000));
    await waitFor(() => Date.now() > c!.leaseExpiresAt + 50);
    const shell = await holdLock(db, 'begin-exclusive');
    // Degrades on the completion; nothing protected the claim since its lease ran out, so a
    // sweep may have taken it over: the runner must neither record nor move anything.
    expect(await a.complete(done([c!]))).toEqual(['lost']);
    expect(a.mode().mode).toBe('degraded');
    expect(a.counters.fencedOutcomes).toBe(1);
    expect(markerDirs(db)).toEqual([]);
    await shell.release();

    // B's sweep takes the expired claim over (failed, retried after the backoff).
    const b = open(db, 'B');
    expect(await b.claim(10, W('B'))).toEqual([]);
    expect(await a.tryRecover()).toBe(true);
    expect(dbRows(db, 'SELECT status FROM file_checkpoints')).toEqual([{ status: 'failed' }]);
    expect(dbRows(db, 'SELECT attempt, outcome FROM file_attempts')).toEqual([{ attempt: 1, outcome: 'lease_expired' }]);
    const got = await b.claim(10, { ...W('B'), now: Date.now() + 3_600_000 });
    expect(got.map((g) => [g.fileUrl, g.attempt])).toEqual([[c!.fileUrl, 2]]);
  });

  it('a degraded renewal after the lease ran out reports the claim lost', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    await a.discover(files('h', 1), Date.now());
    const [c] = await a.claim(1, W('A', 2_000));
    const shell = await holdLock(db, 'begin-exclusive');
    // Degraded in time: the marker protects the claim until the lease it carries.
    expect(await a.heartbeat([c!], 2_000, Date.now())).toEqual([]);
    expect(a.mode().mode).toBe('degraded');
    // The runner stalls (a stopped process) past that lease: the next renewal is refused.
    await waitFor(() => Date.now() > c!.leaseExpiresAt + 2_100);
    expect((await a.heartbeat([c!], 2_000, Date.now())).map((r) => r.token)).toEqual([c!.token]);
    expect(await a.complete(done([c!]))).toEqual(['lost']);
    await shell.release();
  });
});

describe('outcomes of a degraded worker that died', () => {
  it('a completion left in the marker of a dead process is replayed, not swept as an expired lease', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    // The dead worker's claim: granted by the database, completed under its marker while the
    // database was locked, then the process was SIGKILLed before it could replay.
    const pre = new SqliteStore(db);
    await pre.discover(files('d', 1), Date.now());
    const [c] = await pre.claim(1, { workerId: 'vm:dead', leaseMs: 500, now: Date.now() });
    await pre.close();
    // A running normal-mode store; it opened before the marker appeared (an open replays at once).
    const b = open(db, 'B', 200);
    const dead = { pid: 2 ** 22 + 17, host: selfIdentity().host, startTicks: '1' };
    const at = Date.now();
    const entry = {
      t: 'complete' as const, stats: STATS, afterAction: 'keep', at, workerId: 'vm:dead', fileUrl: c!.fileUrl, fileType: 'csv',
      fileTimestamp: new Date(at).toISOString(), fingerprint: c!.fingerprint, fileSize: 100, version: 1, attempt: 1, retryCount: 0,
      token: c!.token, startedAt: new Date(at - 100).toISOString(),
    };
    new ClaimMarkers(path.join(fallbackDirOf(db), 'claims')).transition(c!.fileUrl, 0, {
      fileUrl: c!.fileUrl, state: 'completed', owner: dead, instance: 'gone', workerId: 'vm:dead', token: c!.token, fileType: 'csv',
      fingerprint: c!.fingerprint, version: 1, attempt: 1, retryCount: 0, leaseExpiresAt: c!.leaseExpiresAt, dueAt: null, handlerPid: null, at, entry,
    });
    await waitFor(() => Date.now() > c!.leaseExpiresAt + 50);

    // Its claim's sweep would end the expired claim, and the completion replayed afterwards
    // would be skipped: the file, already moved, would run again and go dead as "vanished".
    expect(await b.claim(10, W('B'))).toEqual([]);
    expect(dbRows(db, 'SELECT outcome FROM file_attempts')).not.toContainEqual({ outcome: 'lease_expired' });
    await waitFor(async () => {
      await b.claim(10, W('B'));
      return dbRows(db, 'SELECT status FROM file_checkpoints')[0]!.status === 'completed';
    });
    expect(dbRows(db, 'SELECT attempt, worker_id, outcome FROM file_attempts')).toEqual([{ attempt: 1, worker_id: 'vm:dead', outcome: 'completed' }]);
    expect(markerDirs(db)).toEqual([]);
  });
});

describe('attempt numbers while degraded', () => {
  it('a normal-mode claim of a file whose degraded claim lapsed does not reuse that attempt number', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    await a.discover(files('r', 1), Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    // A claims from memory (attempt 1, under a marker) and then stops renewing (stopped process).
    const [ca] = await a.claim(1, W('A', 1_000));
    expect(a.mode().mode).toBe('degraded');
    expect(ca).toMatchObject({ attempt: 1 });
    await shell.release();
    await waitFor(() => Date.now() > ca!.leaseExpiresAt + 50);

    // The database never heard of A's attempt 1; B's claim would be attempt 1 as well.
    const b = open(db, 'B');
    const [cb] = await b.claim(1, W('B'));
    expect(cb).toMatchObject({ fileUrl: ca!.fileUrl, attempt: 2 });
    expect((await a.heartbeat([ca!], 1_000, Date.now())).map((r) => r.token)).toEqual([ca!.token]);
    expect(await a.complete(done([ca!]))).toEqual(['lost']);
    expect(await a.tryRecover()).toBe(true);
    expect(await b.complete(done([cb!]))).toEqual(['ok']);
    const att = dbRows(db, 'SELECT version, attempt, worker_id, outcome FROM file_attempts ORDER BY id');
    expect(att).toContainEqual({ version: 1, attempt: 2, worker_id: 'B', outcome: 'completed' });
    const numbers = att.map((r) => `${String(r.version)}#${String(r.attempt)}`);
    expect(new Set(numbers).size).toBe(numbers.length);
  });
  it('a lapsed degraded claim taken over and completed in normal mode is not carried back into the database at recovery', async () => {
    // 30-minute soak, seed 560401330: a worker SIGSTOPped while degraded woke up, came back to
    // normal mode and wrote its lapsed claim over the row another worker had completed meanwhile;
    // the sweep then ended it, and a third worker found the file gone and recorded it dead.
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    const b = open(db, 'B');
    const shell = await holdLock(db, 'begin-exclusive');
    // A sees the file while degraded and claims it from memory; then the file is rewritten,
    // and B records the new content (also version 1: the database never heard of A's).
    const [first] = files('k', 1);
    await a.discover([first!], Date.now());
    const [ca] = await a.claim(1, W('A', 800));
    expect(a.mode().mode).toBe('degraded');
    await shell.release();
    await b.discover([{ ...first!, size: 200, fingerprint: '200:1700000000001:1:k0' }], Date.now());
    await waitFor(() => Date.now() > ca!.leaseExpiresAt + 50);

    const [cb] = await b.claim(1, W('B'));
    expect(cb).toMatchObject({ fileUrl: ca!.fileUrl, attempt: 2 });
    expect(await b.complete(done([cb!]))).toEqual(['ok']);

    // A wakes and comes back before its runner has noticed the lapse.
    expect(await a.tryRecover()).toBe(true);
    expect(dbRows(db, 'SELECT status, claim_token FROM file_checkpoints')).toEqual([{ status: 'completed', claim_token: cb!.token }]);
    expect(await b.claim(10, W('B'))).toEqual([]);
    expect(await a.complete(done([ca!]))).toEqual(['lost']);
    const att = dbRows(db, 'SELECT version, attempt, worker_id, outcome FROM file_attempts ORDER BY id');
    expect(att.filter((r) => r.outcome === 'completed')).toEqual([{ version: 1, attempt: 2, worker_id: 'B', outcome: 'completed' }]);
    const numbers = att.map((r) => `${String(r.version)}#${String(r.attempt)}`);
    expect(new Set(numbers).size).toBe(numbers.length);
    expect(dbRows(db, 'SELECT status FROM file_checkpoints')).toEqual([{ status: 'completed' }]);
  });
});

describe('a dead outcome replayed against a normal-mode claim made meanwhile', () => {
  it('wins over that claim (made while its marker stood), so the file is not run again and recorded "vanished"', async () => {
    // 60-second soak, seed 569056558: A's handler rejected the file while degraded (dead, moved to
    // dead/). B claimed it in the database before A came back; A's replay saw B's live claim as
    // newer and kept the database's state, B gave the file back for A's marker, and the next claim
    // found the file gone: dead "vanished" beside a 'conflict' row of the same attempt.
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    const b = open(db, 'B');
    await a.discover(files('x', 1), Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    const [ca] = await a.claim(1, W('A'));
    expect(a.mode().mode).toBe('degraded');
    expect(await a.fail({ fileUrl: ca!.fileUrl, token: ca!.token, error: 'bad data', permanent: true, now: Date.now(), durationMs: 5, deadAfterAction: 'move:/srv/dead' })).toBe('dead');
    await shell.release();
    recoverRightAfterClaimOf(b, a);
    expect(await b.claim(1, W('B'))).toEqual([]);
    expect(dbRows(db, 'SELECT status, claim_token, after_action FROM file_checkpoints')).toEqual([{ status: 'dead', claim_token: ca!.token, after_action: 'move:/srv/dead' }]);
    expect(dbRows(db, 'SELECT worker_id, outcome FROM file_attempts ORDER BY id')).toEqual([
      { worker_id: 'B', outcome: 'lost' },
      { worker_id: 'A', outcome: 'dead' },
    ]);
  });
});

describe('attempt numbers when a replay and a normal-mode claim meet', () => {
  it('a claim renumbered past a marker skips the number a replay gave away meanwhile', async () => {
    // 30-minute soak, seed 564589116: B's claim read A's failed marker (attempt 1) and was to
    // become attempt 2; in between, A came back and its replayed failure, meeting B's live
    // claim, was renumbered to 2 as well. Two rows v2#2.
    const { db, a, b } = await failedByADegraded('n');
    expect(markerDirs(db)).toHaveLength(1);
    // B's claim finds A's marker and renumbers; A comes back just before that write.
    const primary = (b as unknown as { db: { renumber: (f: string, t: string, n: number) => unknown } }).db;
    const renumber = primary.renumber.bind(primary);
    primary.renumber = async (f, t, n) => {
      expect(await a.tryRecover()).toBe(true);
      return renumber(f, t, n);
    };
    const [cb] = await b.claim(1, W('B'));
    expect(cb).toBeDefined();
    expect(await b.complete(done([cb!]))).toEqual(['ok']);
    const numbers = dbRows(db, 'SELECT version, attempt FROM file_attempts').map((r) => `${String(r.version)}#${String(r.attempt)}`);
    expect(numbers).toHaveLength(2);
    expect(new Set(numbers).size).toBe(numbers.length);
  });
});

describe('attempt numbers a replay gave to the history of a file another worker held', () => {
  it('are not given again by the next claim', async () => {
    // 60-second soak, seed 570326835: A's failure from degraded mode met B's live claim (#1) and
    // went into the history as a conflict, renumbered #2; the row's counter stays B's #1 while B
    // holds it. B's lease ran out, and the next claim took #2 as well.
    const { db, a, b } = await failedByADegraded('h');
    recoverRightAfterClaimOf(b, a);
    const [cb] = await b.claim(1, W('B', 300));
    expect(cb).toMatchObject({ attempt: 1 });
    expect(dbRows(db, 'SELECT attempt, worker_id, outcome FROM file_attempts')).toEqual([{ attempt: 2, worker_id: 'A', outcome: 'conflict' }]);
    // B stops renewing; the next claim sweeps its lease and takes the file.
    await waitFor(() => Date.now() > cb!.leaseExpiresAt + 20);
    const c = openRetryingAtOnce(db, 'C');
    let cc: Claim | undefined;
    await waitFor(async () => ([cc] = await c.claim(1, W('C'))).length > 0);
    expect(cc!.attempt).toBe(3);
    const numbers = dbRows(db, 'SELECT version, attempt FROM file_attempts').map((r) => `${String(r.version)}#${String(r.attempt)}`);
    expect(new Set(numbers).size).toBe(numbers.length);
  });
});

describe('a degraded claim carried into the database at recovery', () => {
  it('supersedes a normal-mode claim made meanwhile, and that claim is not handed to the runner even though the marker is gone by its screen', async () => {
    // 30-minute soak, seed 564589116: B claimed the file in the database right after the lock
    // was released; before B looked for markers, A (degraded, holding the file under a marker,
    // its handler running) recovered, carried its claim over B's and removed its marker. B saw
    // no marker and ran the file too: two runs at once.
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    const b = open(db, 'B');
    await a.discover(files('c', 1), Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    const [ca] = await a.claim(1, W('A'));
    expect(a.mode().mode).toBe('degraded');
    await shell.release();
    // The database knows nothing of A's claim: the row is pending, and B's claim gets it. Right
    // after B's claim commits, A comes back (the interleaving of two processes, made exact).
    recoverRightAfterClaimOf(b, a);
    expect(await b.claim(1, W('B'))).toEqual([]);
    expect(markerDirs(db)).toEqual([]);
    expect(dbRows(db, 'SELECT status, claim_token FROM file_checkpoints')).toEqual([{ status: 'processing', claim_token: ca!.token }]);
    expect(await a.complete(done([ca!]))).toEqual(['ok']);
    expect(dbRows(db, 'SELECT attempt, worker_id, outcome FROM file_attempts ORDER BY id')).toEqual([
      { attempt: 1, worker_id: 'B', outcome: 'lost' },
      { attempt: 2, worker_id: 'A', outcome: 'completed' },
    ]);
  });
});

describe('a changed file while degraded', () => {
  it('completed from memory by one worker, rewritten, then seen by another degraded worker: a new version, not attempt 2', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const file = path.join(dir, 'v.csv');
    fs.writeFileSync(file, 'first\n');
    const f = seenAt(file);
    const a = open(db, 'A');
    const c = open(db, 'C');
    await a.discover([f], Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    const [ca] = await a.claim(1, W('A'));
    expect(a.mode().mode).toBe('degraded');
    expect(ca).toMatchObject({ fileUrl: file, version: 1, attempt: 1 });
    expect(await a.complete(done([ca!], f.fingerprint))).toEqual(['ok']);

    // The file is rewritten. C finds it while the database still says pending v1.
    fs.writeFileSync(file, 'second, longer\n');
    const changed = seenAt(file);
    await c.discover([changed], Date.now());
    expect(c.mode().mode).toBe('degraded');
    const [cc] = await c.claim(1, W('C'));
    expect(cc).toMatchObject({ fileUrl: file, version: 2, attempt: 1 });
    expect(await c.complete(done([cc!], changed.fingerprint))).toEqual(['ok']);

    await shell.release();
    expect(await a.tryRecover()).toBe(true);
    expect(await c.tryRecover()).toBe(true);
    expect(dbRows(db, 'SELECT version, status, fingerprint FROM file_checkpoints')).toEqual([{ version: 2, status: 'completed', fingerprint: changed.fingerprint }]);
    expect(dbRows(db, 'SELECT version, attempt, worker_id, outcome FROM file_attempts ORDER BY version, attempt')).toEqual([
      { version: 1, attempt: 1, worker_id: 'A', outcome: 'completed' },
      { version: 2, attempt: 1, worker_id: 'C', outcome: 'completed' },
    ]);
  });

  it("the old version's completion still in a journal, the new one failed from memory: a normal-mode worker does not run the new content under the old version", async () => {
    // 60-second soak, seed 559493685: the marker of the failed version 2 replaced the one of
    // version 1's completion; once its retry was due a normal-mode worker claimed the row the
    // database still had as version 1 pending, and ran the new content under version 1's
    // idempotency key (a sink deduplicating by key would have dropped it).
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const file = path.join(dir, 'n.csv');
    fs.writeFileSync(file, 'first\n');
    const f = seenAt(file);
    const a = openRetryingAtOnce(db, 'A');
    await a.discover([f], Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    const [ca] = await a.claim(1, W('A'));
    expect(a.mode().mode).toBe('degraded');
    expect(await a.complete(done([ca!], f.fingerprint))).toEqual(['ok']);
    fs.writeFileSync(file, 'second, longer\n');
    const changed = seenAt(file);
    await a.discover([changed], Date.now());
    const [ca2] = await a.claim(1, W('A'));
    expect(ca2).toMatchObject({ fileUrl: file, version: 2, attempt: 1 });
    expect(await a.fail({ fileUrl: file, token: ca2!.token, error: 'told to fail', permanent: false, now: Date.now(), durationMs: 1 })).toBe('failed');
    await shell.release();

    // B, normal mode: the database still has version 1 pending, and sees the new content.
    const b = open(db, 'B');
    await b.discover([changed], Date.now());
    expect(b.mode().mode).toBe('normal');
    const early = await b.claim(1, W('B'));
    expect(early.filter((c) => c.version === 1)).toEqual([]);
    expect(await a.tryRecover()).toBe(true);
    await waitFor(async () => (await b.claim(1, W('B'))).length > 0 || dbRows(db, "SELECT 1 FROM file_checkpoints WHERE status = 'processing'").length > 0);
    const att = dbRows(db, 'SELECT version, attempt, worker_id, outcome FROM file_attempts ORDER BY id');
    expect(att.filter((r) => r.version === 1)).toEqual([{ version: 1, attempt: 1, worker_id: 'A', outcome: 'completed' }]);
    expect(dbRows(db, 'SELECT version, status FROM file_checkpoints')).toEqual([{ version: 2, status: 'processing' }]);
  });

  it('a stale record (the file was rewritten, handled under its newer content by another degraded worker and moved): not run as a new version', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const file = path.join(dir, 's.csv');
    fs.writeFileSync(file, 'first\n');
    const first = seenAt(file);
    const a = open(db, 'A');
    const c = open(db, 'C');
    const shell = await holdLock(db, 'begin-exclusive');
    // A sees the first content and goes degraded before it claims it.
    await a.discover([first], Date.now());
    expect(a.mode().mode).toBe('degraded');
    // The file is rewritten; C sees, handles and moves the newer content.
    fs.writeFileSync(file, 'second, longer\n');
    const second = seenAt(file);
    await c.discover([second], Date.now());
    const [cc] = await c.claim(1, W('C'));
    expect(cc).toMatchObject({ fileUrl: file, version: 1 });
    expect(await c.complete(done([cc!], second.fingerprint))).toEqual(['ok']);
    fs.renameSync(file, path.join(dir, 'done.csv'));

    // A's first content is gone: nothing to run (it used to become version 2, dead "vanished").
    expect(await a.claim(1, W('A'))).toEqual([]);
    await shell.release();
    expect(await c.tryRecover()).toBe(true);
    expect(await a.tryRecover()).toBe(true);
    expect(dbRows(db, 'SELECT version, status, fingerprint FROM file_checkpoints')).toEqual([{ version: 1, status: 'completed', fingerprint: second.fingerprint }]);
  });

  it('a file seen while degraded, then rewritten and handled by another worker: not handed to the database stale when this one comes back', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const inbox = path.join(dir, 'inbox');
    fs.mkdirSync(inbox);
    const file = path.join(inbox, 'f.csv');
    const seen = (p: string) => {
      const st = fs.lstatSync(p);
      return { fileUrl: file, fileType: 'csv', mtimeMs: st.mtimeMs, size: st.size, fingerprint: fingerprintOf(st) };
    };
    fs.writeFileSync(file, 'first content\n');
    const first = seen(file);
    const a = open(db, 'A');
    const shell = await holdLock(db, 'begin-exclusive');
    await a.discover([first], Date.now());
    expect(a.mode().mode).toBe('degraded');
    await shell.release();

    // While A is stopped: the file is replaced (write, then rename over it), and B handles
    // the new content and moves it away.
    const tmp = path.join(inbox, '.f.tmp');
    fs.writeFileSync(tmp, 'second, longer content\n');
    fs.renameSync(tmp, file);
    const second = seen(file);
    const b = open(db, 'B');
    await b.discover([second], Date.now());
    const [cb] = await b.claim(1, W('B'));
    expect(await b.complete(done([cb!], second.fingerprint))).toEqual(['ok']);
    fs.renameSync(file, path.join(dir, 'done.csv'));

    // A comes back: what it saw is gone; the database keeps B's outcome, no stale version.
    expect(await a.tryRecover()).toBe(true);
    await a.discover([], Date.now());
    expect(dbRows(db, 'SELECT version, status, fingerprint FROM file_checkpoints')).toEqual([{ version: 1, status: 'completed', fingerprint: second.fingerprint }]);
  });
  it('with pathPrefixes, a file seen while degraded and still there reaches the database (the look is at this host\'s path)', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const inbox = path.join(dir, 'inbox');
    fs.mkdirSync(inbox);
    const local = path.join(inbox, 'g.csv');
    fs.writeFileSync(local, 'content\n');
    const st = fs.lstatSync(local);
    // The store sees the ledger's name; only localPath knows where this host has the file.
    const shared = '/share/inbox/g.csv';
    const toLocal = (p: string) => (p.startsWith('/share/') ? path.join(dir, p.slice('/share/'.length)) : p);
    const a = new FallbackStore(db, { lockTimeoutMs: 300, busyTimeoutMs: 20, fallback: { workerId: 'A', probeMs: 60_000, snapshotMs: 0, localPath: toLocal } });
    stores.push(a);
    const shell = await holdLock(db, 'begin-exclusive');
    await a.discover([{ fileUrl: shared, fileType: 'csv', mtimeMs: st.mtimeMs, size: st.size, fingerprint: fingerprintOf(st) }], Date.now());
    expect(a.mode().mode).toBe('degraded');
    await shell.release();
    expect(await a.tryRecover()).toBe(true);
    await waitFor(() => dbRows(db, 'SELECT file_url, status FROM file_checkpoints').length === 1);
    expect(dbRows(db, 'SELECT file_url, status FROM file_checkpoints')).toEqual([{ file_url: shared, status: 'pending' }]);
  });
  it("a normal-mode claim of a file whose degraded claim lapsed reports that claim, so the runner kills its orphaned handler", async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    const b = open(db, 'B');
    await a.discover(files('o', 1), Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    const [ca] = await a.claim(1, W('A', 600));
    expect(a.mode().mode).toBe('degraded');
    await a.setHandlerPid({ fileUrl: ca!.fileUrl, token: ca!.token }, 4242);
    await shell.release();
    // A stops renewing (as if stopped or killed): its marker's lease runs out.
    await waitFor(() => Date.now() > ca!.leaseExpiresAt + 50);
    const reported: ExpiredClaim[] = [];
    const [cb] = await b.claim(1, { ...W('B'), onExpired: (e) => reported.push(...e) });
    expect(cb).toMatchObject({ fileUrl: ca!.fileUrl });
    expect(reported).toEqual([expect.objectContaining({ fileUrl: ca!.fileUrl, token: ca!.token, workerId: 'A', handlerPid: 4242 })]);
  });
  it('a file that went dead while degraded carries its onDead after-action label into the database (so a killed mover is redone)', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const a = open(db, 'A');
    await a.discover(files('d', 1), Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    const [c] = await a.claim(1, W('A'));
    expect(a.mode().mode).toBe('degraded');
    const res = await a.fail({ fileUrl: c!.fileUrl, token: c!.token, error: 'bad data', permanent: true, now: Date.now(), durationMs: 5, reason: 'dead', deadAfterAction: 'move:/srv/dead' });
    expect(res).toBe('dead');
    await shell.release();
    expect(await a.tryRecover()).toBe(true);
    expect(dbRows(db, 'SELECT status, after_action FROM file_checkpoints')).toEqual([{ status: 'dead', after_action: 'move:/srv/dead' }]);
    expect(dbRows(db, 'SELECT outcome, after_action FROM file_attempts')).toEqual([{ outcome: 'dead', after_action: 'move:/srv/dead' }]);
  });
});
