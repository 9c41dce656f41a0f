import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const f = { fileUrl: '/in/a.csv', fileType: 'csv', mtimeMs: 0, size: 1, fingerprint: '1:0:5:7' };
const stats = { totalRows: 0, filteredRows: 0, persistedRows: 0, durationMs: 0 };

describe('an after-action its worker never ran', () => {
  it('is reported by discovery while the file lies where it was, and taken over by exactly one worker', async () => {
    const s = new SqliteStore(path.join(tmpDir(), 'u.db'));
    await s.discover([f], 0);
    const [c] = await s.claim(1, { workerId: 'w:1', leaseMs: 1000, now: 0 });
    await s.complete([{ fileUrl: f.fileUrl, token: c!.token, stats, now: 1, afterAction: 'move:/done' }]);
    // The worker died before moving: the file is found again, unchanged.
    const r = await s.discover([f], 2);
    expect(r.unfinished).toEqual([{ fileUrl: f.fileUrl, status: 'completed', afterAction: 'move:/done', fingerprint: f.fingerprint, processedBy: 'w:1', recordedAt: 1 }]);
    const item = r.unfinished![0]!;
    expect(await s.takeAfterAction(item, 'w:2', 3)).toBe(true);
    expect(await s.takeAfterAction(item, 'w:3', 3)).toBe(false);
    expect((await s.get(f.fileUrl))!.afterAction).toMatch(/^move:\/done \(redone by w:2 at /);
    // Still there: reported again, with the taker's label. The runner takes it only once w:2 is
    // gone too (a taker that died before finishing); the new label replaces the old suffix.
    const again = (await s.discover([f], 4)).unfinished![0]!;
    expect(again.afterAction).toMatch(/^move:\/done \(redone by w:2 at /);
    expect(await s.takeAfterAction(item, 'w:3', 5)).toBe(false); // the label it named is gone
    expect(await s.takeAfterAction(again, 'w:3', 5)).toBe(true);
    expect((await s.get(f.fileUrl))!.afterAction).toMatch(/^move:\/done \(redone by w:3 at [^(]*\)$/);
    await s.close();
  });

  it('is not reported for keep, or for a file that changed (that is a new version)', async () => {
    const s = new SqliteStore(path.join(tmpDir(), 'u.db'));
    await s.discover([f, { ...f, fileUrl: '/in/b.csv' }], 0);
    const cs = await s.claim(2, { workerId: 'w:1', leaseMs: 1000, now: 0 });
    const label = (u: string) => (u === '/in/a.csv' ? 'keep' : 'delete');
    await s.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats, now: 1, afterAction: label(c.fileUrl) })));
    const r = await s.discover([f, { ...f, fileUrl: '/in/b.csv', fingerprint: '2:0:5:8' }], 2);
    expect(r.unfinished).toBeUndefined();
    expect(r.reversioned).toBe(1);
    await s.close();
  });
});
