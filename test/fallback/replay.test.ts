/**
 * Journal replay against a real database: idempotent, first outcome kept, conflicts recorded,
 * rows the database lost are put back.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { JournalEntry } from '../../src/store/fallback/journal.js';
import { Replayer } from '../../src/store/fallback/replay.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { STATS, files } from './helpers.js';

const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  cleanupTmpDirs();
});

function store(): SqliteStore {
  const s = new SqliteStore(path.join(tmpDir(), 'ckpt.db'));
  open.push(s);
  return s;
}

const T = Date.parse('2026-11-28T04:00:00.000Z');
function entry(t: 'claim' | 'complete', fileUrl: string, token: string, extra: Partial<JournalEntry> = {}): JournalEntry {
  const base = {
    at: T + 10, workerId: 'degraded-w', fileUrl, fileType: 'csv', fileTimestamp: new Date(T).toISOString(), fingerprint: 'fp-journal',
    fileSize: 100, version: 1, attempt: 1, retryCount: 0, token, startedAt: new Date(T).toISOString(),
  };
  return (t === 'claim' ? { t, leaseExpiresAt: T + 60_000, ...base, ...extra } : { t, stats: STATS, afterAction: 'keep', ...base, ...extra }) as JournalEntry;
}

function replay(s: SqliteStore, entries: JournalEntry[]) {
  const r = new Replayer(s.db, T + 100);
  s.db.transaction(() => entries.forEach((e) => r.apply(e))).immediate();
  return r.stats;
}

describe('journal replay', () => {
  it('is idempotent: a second replay of the same journal changes nothing', async () => {
    const s = store();
    await s.discover(files('p', 2), T);
    const f = files('p', 2)[0]!.fileUrl;
    const journal = [entry('claim', f, 'tok-1'), entry('complete', f, 'tok-1')];
    expect(replay(s, journal)).toMatchObject({ applied: 2, conflicts: 0 });
    expect(replay(s, journal)).toMatchObject({ applied: 0, skipped: 2 });
    expect(await s.get(f)).toMatchObject({ status: 'completed', claimToken: 'tok-1', attempts: 1, afterAction: 'keep' });
    expect((await s.attempts(f)).map((a) => a.outcome)).toEqual(['completed']);
  });

  it("a replayed row's updated_at is when the replay wrote it; the outcome keeps its own time", async () => {
    const s = store();
    await s.discover(files('u', 1), T);
    const f = files('u', 1)[0]!.fileUrl;
    // replay() writes at T + 100; the entries happened at T + 10. Stamped T + 10, the row would
    // look older than copies written before it, and salvage picks the newest copy by it.
    replay(s, [entry('claim', f, 'tok-u'), entry('complete', f, 'tok-u')]);
    const row = s.db.prepare('SELECT updated_at, completed_at FROM file_checkpoints WHERE file_url = ?').get(f) as { updated_at: string; completed_at: string };
    expect(row).toEqual({ updated_at: new Date(T + 100).toISOString(), completed_at: new Date(T + 10).toISOString() });
  });

  it('a file completed in both keeps the first outcome; the other is recorded as a conflict', async () => {
    const s = store();
    await s.discover(files('q', 1), T);
    const [c] = await s.claim(1, { workerId: 'normal-w', leaseMs: 60_000, now: T });
    await s.complete([{ fileUrl: c!.fileUrl, token: c!.token, stats: { ...STATS, totalRows: 99 }, now: T + 5 }]);
    expect(replay(s, [entry('claim', c!.fileUrl, 'tok-2'), entry('complete', c!.fileUrl, 'tok-2')])).toMatchObject({ conflicts: 1 });
    expect(await s.get(c!.fileUrl)).toMatchObject({ status: 'completed', claimToken: c!.token, recordsTotal: 99 });
    const att = await s.attempts(c!.fileUrl);
    expect(att.map((a) => [a.workerId, a.outcome])).toEqual([
      ['normal-w', 'completed'],
      ['degraded-w', 'conflict'],
    ]);
    expect(att[1]!.errorMessage).toMatch(/kept the outcome recorded first/);
  });

  it('a row the database lost (salvage) is put back from the journal', async () => {
    const s = store();
    const f = '/inbox/lost.csv';
    expect(replay(s, [entry('complete', f, 'tok-3')])).toMatchObject({ inserted: 1, applied: 1 });
    expect(await s.get(f)).toMatchObject({ status: 'completed', fileType: 'csv', version: 1, attempts: 1 });
    // The watcher offers it again: same content, not handled again.
    expect(await s.discover([{ fileUrl: f, fileType: 'csv', mtimeMs: T, size: 100, fingerprint: 'fp-journal' }], T + 200)).toMatchObject({ unchanged: 1 });
  });
});

function failEntry(fileUrl: string, token: string, extra: Partial<JournalEntry> = {}): JournalEntry {
  return {
    t: 'fail', status: 'failed', dueAt: T + 50, error: 'exit code 1', durationMs: 5, outcome: 'failed',
    at: T + 10, workerId: 'degraded-w', fileUrl, fileType: 'csv', fileTimestamp: new Date(T).toISOString(), fingerprint: 'fp-journal',
    fileSize: 100, version: 1, attempt: 1, retryCount: 1, token, startedAt: new Date(T).toISOString(), ...extra,
  } as JournalEntry;
}

describe('journal replay against a database that moved on', () => {
  it('an attempt number the database gave to another claim meanwhile is renumbered; the next claim gets a fresh one', async () => {
    const s = store();
    await s.discover(files('n', 1), T);
    const f = files('n', 1)[0]!.fileUrl;
    // Normal mode handed out attempt 1 (and gave it back) while a degraded worker, which had
    // read the row before, numbered its own claim 1 as well.
    const [c] = await s.claim(1, { workerId: 'normal-w', leaseMs: 60_000, now: T + 1 });
    expect(c!.attempt).toBe(1);
    await s.release([c!], T + 2);
    expect(replay(s, [entry('claim', f, 'tok-d'), failEntry(f, 'tok-d')])).toMatchObject({ renumbered: 1, conflicts: 0 });
    expect(await s.get(f)).toMatchObject({ status: 'failed', attempts: 2 });
    const [next] = await s.claim(1, { workerId: 'normal-w', leaseMs: 60_000, now: T + 10_000 });
    expect(next!.attempt).toBe(3);
    await s.complete([{ fileUrl: f, token: next!.token, stats: STATS, now: T + 10_001 }]);
    expect((await s.attempts(f)).map((a) => [a.attempt, a.workerId, a.outcome])).toEqual([
      [1, 'normal-w', 'released'],
      [2, 'degraded-w', 'failed'],
      [3, 'normal-w', 'completed'],
    ]);
  });

  it('a replayed claim does not reopen a row that a later claim has moved on since', async () => {
    // CI soak seed 572555440: a stopped degraded worker's claim (started T) was written back as
    // processing after a normal-mode worker had claimed the file later and failed it; the sweep
    // then recorded a second outcome for that worker's attempt number.
    const s = store();
    await s.discover(files('m', 1), T);
    const f = files('m', 1)[0]!.fileUrl;
    const [c] = await s.claim(1, { workerId: 'normal-w', leaseMs: 60_000, now: T + 20 });
    expect(await s.fail({ fileUrl: f, token: c!.token, error: 'told to fail', permanent: false, now: T + 30, durationMs: 10 })).toBe('failed');
    expect(replay(s, [entry('claim', f, 'tok-d')])).toMatchObject({ applied: 0, skipped: 1 });
    expect(await s.get(f)).toMatchObject({ status: 'failed', claimToken: c!.token, attempts: 1 });
  });

  it('a replayed failure does not override a newer live claim: the database wins, the failure is a conflict', async () => {
    const s = store();
    await s.discover(files('z', 1), T);
    const f = files('z', 1)[0]!.fileUrl;
    // The degraded worker's claim began at T and failed at T+10 (in its journal only); at T+20 a
    // normal-mode worker claimed the file, and it still holds it when the journal is replayed.
    const [c] = await s.claim(1, { workerId: 'normal-w', leaseMs: 60_000, now: T + 20 });
    expect(replay(s, [entry('claim', f, 'tok-d'), failEntry(f, 'tok-d')])).toMatchObject({ conflicts: 1 });
    expect(await s.get(f)).toMatchObject({ status: 'processing', claimToken: c!.token });
    expect(await s.complete([{ fileUrl: f, token: c!.token, stats: STATS, now: T + 200 }])).toEqual(['ok']);
    const att = await s.attempts(f);
    expect(att.map((a) => [a.attempt, a.workerId, a.outcome])).toEqual([
      [1, 'normal-w', 'completed'],
      [2, 'degraded-w', 'conflict'],
    ]);
  });
});
