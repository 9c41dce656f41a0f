/**
 * The database locked by someone else (the real sqlite3 shell): the FallbackStore degrades,
 * goes on in memory with a journal and claim markers, never hands out a completed file, and
 * puts everything into the database once the lock is gone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { readJournal } from '../../src/store/fallback/journal.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { killChildren, runTs } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { STATS, dbRows, files, holdLock, journalsIn, killShells, markerDirs, statusOf } from './helpers.js';

const stores: FallbackStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  killShells();
  killChildren();
  cleanupTmpDirs();
});

function open(db: string, workerId = 'w1', probeMs = 100): FallbackStore {
  const s = new FallbackStore(db, { lockTimeoutMs: 300, busyTimeoutMs: 20, fallback: { workerId, probeMs } });
  stores.push(s);
  return s;
}

const W = (workerId = 'w1') => ({ workerId, leaseMs: 30_000, now: Date.now() });
const done = (cs: { fileUrl: string; token: string }[]) => cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats: STATS, now: Date.now() }));

describe('database locked by the sqlite3 shell (BEGIN EXCLUSIVE)', () => {
  it('degrades after lockTimeoutMs, keeps working, never re-hands a completed file, and replays after COMMIT', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const s = open(db);
    await s.discover(files('a', 10), Date.now());
    const first = await s.claim(4, W());
    expect(await s.complete(done(first.slice(0, 1)))).toEqual(['ok']);
    expect(s.mode().mode).toBe('normal');

    const shell = await holdLock(db, 'begin-exclusive');
    // Claimed before the lock, completed during it: answered 'ok' once it is in the journal.
    expect(await s.complete(done(first.slice(1, 3)))).toEqual(['ok', 'ok']);
    const mode = s.mode();
    expect(mode).toMatchObject({ mode: 'degraded', kind: 'locked' });
    expect(mode.reason).toMatch(/SQLITE_BUSY/);
    const [journal] = journalsIn(db);
    expect(journal).toBeDefined();
    expect(readJournal(journal!).entries.filter((e) => e.t === 'complete').map((e) => e.fileUrl).sort()).toEqual(first.slice(1, 3).map((c) => c.fileUrl).sort());
    expect(fs.statSync(journal!).mode & 0o777).toBe(0o600);

    // Discovery and claims go on; the rescan re-offers all ten files and five new ones.
    await s.discover([...files('a', 10), ...files('b', 5)], Date.now());
    const during = await s.claim(100, W());
    const handed = during.map((c) => c.fileUrl);
    // Completed before the lock (in the database) or during it (in the journal): never again.
    for (const c of first.slice(0, 3)) expect(handed).not.toContain(c.fileUrl);
    // Still held by us (claimed before the lock): not handed out twice either.
    expect(handed).not.toContain(first[3]!.fileUrl);
    expect(handed.sort()).toEqual([...files('a', 10).slice(4).map((f) => f.fileUrl), ...files('b', 5).map((f) => f.fileUrl)].sort());
    expect(await s.complete(done(during))).toEqual(during.map(() => 'ok'));
    expect(await s.claim(100, W())).toEqual([]);
    // The claim held since before the lock still works in degraded mode.
    expect(await s.heartbeat([first[3]!], 30_000, Date.now())).toEqual([]);
    // The database has none of this yet.
    expect(statusOf(db).completed).toBe(1);

    await shell.release();
    const released = Date.now();
    await waitFor(() => s.mode().mode === 'normal', { timeoutMs: 10_000 });
    const tookMs = Date.now() - released;
    expect(tookMs).toBeLessThan(10_000);
    expect(statusOf(db)).toEqual({ completed: 3 + during.length, processing: 1 });
    expect(journalsIn(db)).toEqual([]);
    expect(markerDirs(db)).toEqual([]);
    // The claim held across the episode was written into the database under its own token.
    expect(dbRows(db, 'SELECT claim_token FROM file_checkpoints WHERE file_url = ?', first[3]!.fileUrl)[0]!.claim_token).toBe(first[3]!.token);
    expect(await s.complete(done([first[3]!]))).toEqual(['ok']);
    const attempts = dbRows(db, `SELECT outcome, count(*) AS n FROM file_attempts GROUP BY outcome`);
    expect(attempts).toEqual([{ outcome: 'completed', n: 4 + during.length }]);
  });

  it('two processes in fallback never claim the same file; all of it lands in the database after COMMIT', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const N = 40;
    // Create the schema and a few completed files first.
    const pre = new SqliteStore(db);
    await pre.discover(files('f', 5), Date.now());
    const cs = await pre.claim(5, W('pre'));
    await pre.complete(done(cs));
    await pre.close();

    const shell = await holdLock(db, 'begin-exclusive');
    const stop = path.join(dir, 'stop');
    const outs = ['w1', 'w2'].map((w) => path.join(dir, `${w}.out`));
    const go = path.join(dir, 'go');
    const cfg = JSON.stringify({ files: N, prefix: 'f', batch: 3, workMs: 30, stopFile: stop, goFile: go });
    const procs = outs.map((out, i) => runTs('test/fixtures/fallback-worker.ts', [db, out, `w${i + 1}`, cfg]));
    // Both loaded, then both start at once: they race for the same files.
    await waitFor(() => outs.every((o) => fs.existsSync(`${o}.ready`)), { timeoutMs: 30_000 });
    fs.writeFileSync(go, '');
    const lines = () => outs.flatMap((o) => (fs.existsSync(o) ? fs.readFileSync(o, 'utf8').split('\n').filter(Boolean) : []));
    // Every file that was not completed before the lock gets handled while the lock is held.
    await waitFor(() => lines().filter((l) => l.startsWith('done ')).length >= N - 5, { timeoutMs: 30_000, message: 'files handled during the lock' });
    expect(statusOf(db).completed).toBe(5);
    const claims = lines().filter((l) => l.startsWith('claim ')).map((l) => l.split(' ')[1]);
    expect(new Set(claims).size).toBe(claims.length);
    expect(claims.length).toBe(N - 5);
    // Both did some of the work, and both were degraded.
    for (const o of outs) expect(fs.readFileSync(o, 'utf8')).toMatch(/mode degraded/);
    for (const o of outs) expect(fs.readFileSync(o, 'utf8')).toMatch(/^claim /m);

    await shell.release();
    await waitFor(() => statusOf(db).completed === N, { timeoutMs: 10_000, message: 'all completed in the database' });
    fs.writeFileSync(stop, '');
    for (const r of await Promise.all(procs)) expect(r.code, r.stderr).toBe(0);
    const perFile = dbRows(db, `SELECT file_url, count(*) AS n FROM file_attempts WHERE outcome = 'completed' GROUP BY file_url HAVING n > 1`);
    expect(perFile).toEqual([]);
    expect(journalsIn(db)).toEqual([]);
    expect(markerDirs(db)).toEqual([]);
  });

  it('a normal-mode process gives back a file that a degraded process holds under a claim marker', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    // A: degraded, and stays so (no probe for a minute) after the lock is gone.
    const a = open(db, 'A', 60_000);
    await a.discover(files('m', 3), Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    await a.discover(files('m', 3), Date.now());
    expect(a.mode().mode).toBe('degraded');
    const heldByA = await a.claim(2, W('A'));
    expect(heldByA).toHaveLength(2);
    await shell.release();

    // B: normal mode, same database. It may claim only the file A does not hold.
    const b = open(db, 'B');
    expect(b.mode().mode).toBe('normal');
    const byB = await b.claim(10, W('B'));
    expect(byB.map((c) => c.fileUrl)).toEqual(files('m', 3).slice(2).map((f) => f.fileUrl));
    expect(b.counters.deferredForMarkers).toBe(2);
    // Given back without counting an attempt.
    expect(dbRows(db, `SELECT attempts FROM file_checkpoints WHERE file_url = ?`, heldByA[0]!.fileUrl)[0]!.attempts).toBe(0);

    expect(await a.complete(done(heldByA))).toEqual(['ok', 'ok']);
    expect(await b.claim(10, W('B'))).toEqual([]);
    expect(await a.tryRecover()).toBe(true);
    expect(statusOf(db)).toEqual({ completed: 2, processing: 1 });
    expect(await b.claim(10, { ...W('B'), now: Date.now() + 5_000 })).toEqual([]);
  });
});

describe('PRAGMA locking_mode=EXCLUSIVE held by another process (even reads fail)', () => {
  // The shell can take this lock only while no other connection has the WAL database open
  // (measured: "database is locked" otherwise), so ckpt meets it when it starts or restarts.
  it('a store opened while the lock is held starts degraded, looks files up in a private copy, re-runs no completed file, and comes back', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const pre = new SqliteStore(db);
    await pre.discover(files('z', 4), Date.now());
    const cs = await pre.claim(2, W('pre'));
    await pre.complete(done(cs));
    await pre.close();

    const shell = await holdLock(db, 'locking-mode-exclusive');
    const s = open(db);
    expect(s.mode()).toMatchObject({ mode: 'degraded', kind: 'locked' });
    await s.discover([...files('z', 4), ...files('n', 2)], Date.now());
    const during = await s.claim(10, W());
    expect(during.map((c) => c.fileUrl).sort()).toEqual([...files('n', 2), ...files('z', 4).slice(2)].map((f) => f.fileUrl).sort());
    expect(fs.readdirSync(`${db}.fallback`).some((f) => f.startsWith('lookup-'))).toBe(true);
    expect(await s.complete(done(during))).toEqual(during.map(() => 'ok'));
    expect(await s.claim(10, W())).toEqual([]);

    await shell.release();
    await waitFor(() => s.mode().mode === 'normal', { timeoutMs: 10_000 });
    expect(statusOf(db)).toEqual({ completed: 6 });
    expect(fs.readdirSync(`${db}.fallback`).some((f) => f.startsWith('lookup-'))).toBe(false);
  });

  it('the lock let go and taken again: a file another process completed in between is not handed out from the older copy', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const pre = new SqliteStore(db);
    await pre.discover(files('y', 3), Date.now());
    await pre.close();

    let shell = await holdLock(db, 'locking-mode-exclusive');
    // Probing once a minute: it stays degraded across the gap, as a process would that did
    // not probe during it.
    const s = open(db, 'w1', 60_000);
    expect(s.mode()).toMatchObject({ mode: 'degraded', kind: 'locked' });
    await s.discover(files('y', 3), Date.now());
    await shell.release();

    const other = new SqliteStore(db);
    const y0 = files('y', 1)[0]!.fileUrl;
    const c = await other.claimFile(y0, W('other'));
    expect(await other.complete(done([c!]))).toEqual(['ok']);
    await other.close();
    shell = await holdLock(db, 'locking-mode-exclusive');

    const handed: string[] = [];
    await waitFor(async () => {
      const cs = await s.claim(10, W());
      handed.push(...cs.map((x) => x.fileUrl));
      return handed.length >= 2;
    });
    expect(handed.sort()).toEqual(files('y', 3).slice(1).map((f) => f.fileUrl).sort());
    expect(s.mode().mode).toBe('degraded');
    await shell.release();
  });
});

describe('a crash while degraded loses nothing', () => {
  it('SIGKILL during fallback; the next process replays the journal on open', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    const pre = new SqliteStore(db);
    await pre.close();
    const shell = await holdLock(db, 'begin-exclusive');
    const out = path.join(dir, 'w.out');
    const cfg = JSON.stringify({ files: 10, prefix: 'k', leaseMs: 2_000, holdAfter: { completed: 6, claimed: 2 } });
    const child = runTs('test/fixtures/fallback-worker.ts', [db, out, 'victim', cfg]);
    await waitFor(() => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('READY'), { timeoutMs: 30_000 });
    const text = fs.readFileSync(out, 'utf8');
    expect(text).toMatch(/mode degraded/);
    const completed = text.split('\n').filter((l) => l.startsWith('done ')).map((l) => l.slice(5));
    expect(completed).toHaveLength(6);
    const pid = Number(fs.readdirSync(`${db}.fallback`).find((f) => f.startsWith('journal-victim-'))!.split('-')[2]);
    process.kill(pid, 'SIGKILL');
    await child;
    expect(statusOf(db)).toEqual({});
    await shell.release();

    // A new process opens the database: the dead worker's journal goes in first.
    const s = open(db, 'w2');
    expect(s.mode().mode).toBe('normal');
    expect(statusOf(db)).toEqual({ completed: 6, processing: 2 });
    expect(journalsIn(db)).toEqual([]);
    expect(markerDirs(db)).toEqual([]);
    // The two files it held come back after their lease (the two it never reached are new to
    // the database); the completed ones never do.
    await s.discover(files('k', 10), Date.now());
    const t = Date.now();
    const long = { workerId: 'w2', leaseMs: 3_600_000 };
    const handed = [
      ...(await s.claim(10, { ...long, now: t })),
      ...(await s.claim(10, { ...long, now: t + 60_000 })),
      ...(await s.claim(10, { ...long, now: t + 120_000 })),
    ].map((c) => c.fileUrl);
    for (const f of completed) expect(handed).not.toContain(f);
    expect(handed.sort()).toEqual(files('k', 10).map((f) => f.fileUrl).filter((f) => !completed.includes(f)).sort());
    expect(dbRows(db, `SELECT count(*) AS n FROM file_attempts WHERE outcome = 'lease_expired'`)[0]!.n).toBe(2);
  });
  it("in degraded mode, a claim whose lease runs out in memory is retried after its route's backoff, not the top level's", async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const top = { maxRetries: 5, baseDelayMs: 1_000, maxDelayMs: 1_000 };
    const s = new FallbackStore(db, { lockTimeoutMs: 300, busyTimeoutMs: 20, retry: top, random: () => 0.999, fallback: { workerId: 'w1', probeMs: 100 } });
    stores.push(s);
    const [strict] = files('strict', 1).map((f) => ({ ...f, fileType: 'strict' }));
    const [lax] = files('lax', 1);
    await s.discover([strict!, lax!], Date.now());
    const shell = await holdLock(db, 'begin-exclusive');
    const t = Date.now();
    expect(await s.claim(2, { workerId: 'w1', leaseMs: 1_000, now: t })).toHaveLength(2);
    expect(s.mode().mode).toBe('degraded');
    // The runner stopped renewing both; the next claim's sweep finds them expired.
    const route = { retry: { maxRetries: 5, baseDelayMs: 60_000, maxDelayMs: 60_000 } };
    const routeOf = (type: string) => (type === 'strict' ? route : undefined);
    await s.claim(2, { workerId: 'w1', leaseMs: 1_000, now: t + 2_000, routeOf });
    const expired = readJournal(journalsIn(db)[0]!).entries.filter((e) => e.t === 'expired');
    const dueOf = (url: string) => expired.find((e) => e.fileUrl === url) as { dueAt?: number } | undefined;
    // floor(0.999 * base): the route's 60 s for its file type, the top level's 1 s for the other.
    expect(dueOf(strict!.fileUrl)?.dueAt).toBe(t + 2_000 + 59_940);
    expect(dueOf(lax!.fileUrl)?.dueAt).toBe(t + 2_000 + 999);
    await shell.release();
  });

  it('discover asks stillThere inside the write, after a wait on the lock, not before it', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const s = new SqliteStore(db, { lockTimeoutMs: 10_000, busyTimeoutMs: 20 });
    try {
      const [f] = files('still', 1);
      const shell = await holdLock(db, 'begin-exclusive');
      let there = true;
      let asked = 0;
      // The first try (BEGIN IMMEDIATE) fails at once under the shell's lock; the write waits.
      const p = s.discover([f!], Date.now(), { stillThere: () => (asked++, there) });
      expect(asked).toBe(0);
      // The file is handled and moved elsewhere while the write waits.
      there = false;
      await shell.release();
      expect(await p).toMatchObject({ inserted: 0 });
      // Asked once, inside the transaction that finally got the lock: after the move.
      expect(asked).toBe(1);
      expect(dbRows(db, 'SELECT file_url FROM file_checkpoints')).toEqual([]);
    } finally {
      s.close();
    }
  });
});
