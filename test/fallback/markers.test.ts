/**
 * Claim markers and the journal on their own: the take-over race between real processes, and
 * what a crash leaves in a journal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClaimMarkers, type MarkerBody, claimStands } from '../../src/store/fallback/claim-markers.js';
import { Journal, readJournal } from '../../src/store/fallback/journal.js';
import { selfIdentity } from '../../src/store/fallback/process-identity.js';
import { killChildren, runTs } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killChildren();
  cleanupTmpDirs();
});

const dead = { pid: 2 ** 22 + 17, host: selfIdentity().host, startTicks: '1' };

function body(fileUrl: string, extra: Partial<MarkerBody> = {}): MarkerBody {
  return {
    fileUrl, state: 'claimed', owner: selfIdentity(), instance: 'test', workerId: 'w', token: 't', fileType: 'csv', fingerprint: 'fp',
    version: 1, attempt: 1, retryCount: 0, leaseExpiresAt: Date.now() + 60_000, dueAt: null, handlerPid: null, at: Date.now(), ...extra,
  };
}

describe('claim markers', () => {
  it('generations: exactly one writer wins each step; files are 0600', () => {
    const m = new ClaimMarkers(path.join(tmpDir(), 'claims'));
    const g1 = m.transition('/a', 0, body('/a'));
    expect(g1?.gen).toBe(1);
    expect(m.transition('/a', 0, body('/a', { token: 'other' }))).toBeNull();
    expect(m.current('/a')).toMatchObject({ gen: 1, token: 't' });
    const g2 = m.transition('/a', 1, body('/a', { state: 'completed' }));
    expect(g2?.gen).toBe(2);
    // A heartbeat on a generation that is no longer current says the claim is gone.
    expect(m.refresh({ ...g1!, leaseExpiresAt: Date.now() + 1 })).toBe(false);
    const dir = m.dirOf('/a');
    for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
    m.remove('/a');
    expect(fs.existsSync(dir)).toBe(false);
    expect(m.current('/a')).toBeNull();
  });

  it('a step from a generation that was cleared meanwhile does not stand, whichever link comes first', () => {
    for (const staleFirst of [true, false]) {
      const m = new ClaimMarkers(path.join(tmpDir(), 'claims'));
      m.transition('/b', 0, body('/b'));
      const done = m.transition('/b', 1, body('/b', { state: 'completed' }))!;
      // One worker reads the completed marker; then its outcome is replayed and the markers are
      // cleared; then another worker, finding none, begins again at generation 1.
      const read = m.current('/b')!;
      expect(read.gen).toBe(done.gen);
      m.remove('/b', done.gen);
      const stale = () => m.transition('/b', read.gen, body('/b', { token: 'stale' }));
      const fresh = () => m.transition('/b', 0, body('/b', { token: 'fresh' }));
      const [a, b] = staleFirst ? [stale(), fresh()] : [fresh(), stale()];
      const [s, f] = staleFirst ? [a, b] : [b, a];
      expect(s, 'the step from the cleared generation').toBeNull();
      expect(f?.gen).toBe(1);
      expect(m.current('/b')).toMatchObject({ gen: 1, token: 'fresh' });
    }
  });

  it("a dead process's half-written marker does not keep the folder: removed with the markers", () => {
    const m = new ClaimMarkers(path.join(tmpDir(), 'claims'));
    m.transition('/b', 0, body('/b'));
    const dir = m.dirOf('/b');
    // pid 2^22+17 is above the kernel's pid limit: never alive. A live process's temp stays.
    fs.writeFileSync(path.join(dir, `.tmp-${dead.pid}-a1b2c3`), '{"half":');
    m.remove('/b');
    expect(fs.existsSync(dir)).toBe(false);

    m.transition('/c', 0, body('/c'));
    const live = path.join(m.dirOf('/c'), `.tmp-${process.pid}-d4e5f6`);
    fs.writeFileSync(live, '{"half":');
    m.remove('/c');
    expect(fs.existsSync(live)).toBe(true);
  });

  it('a claim stands while its owner lives and its lease runs; a dead owner does not hold it', () => {
    const now = Date.now();
    expect(claimStands({ ...body('/x'), gen: 1 }, now)).toBe(true);
    expect(claimStands({ ...body('/x', { leaseExpiresAt: now - 1 }), gen: 1 }, now)).toBe(false);
    expect(claimStands({ ...body('/x', { owner: dead }), gen: 1 }, now)).toBe(false);
  });

  it('four processes race to take over 300 markers of a dead owner: each is taken exactly once', async () => {
    const dir = tmpDir();
    const root = path.join(dir, 'claims');
    const m = new ClaimMarkers(root);
    const N = 300;
    for (let i = 0; i < N; i++) m.transition(`/inbox/r${i}`, 0, body(`/inbox/r${i}`, { owner: dead }));
    const outs = [0, 1, 2, 3].map((i) => path.join(dir, `out${i}`));
    const racers = outs.map((o, i) => runTs('test/fixtures/marker-taker.ts', [root, o, String(N), `racer${i}`]));
    // Once all four are loaded, start them together.
    await waitFor(() => outs.every((o) => fs.existsSync(`${o}.ready`)), { timeoutMs: 30_000 });
    fs.writeFileSync(`${root}.go`, '');
    for (const r of await Promise.all(racers)) expect(r.code, r.stderr).toBe(0);
    const won = outs.flatMap((o) => fs.readFileSync(o, 'utf8').split('\n').filter(Boolean));
    expect(won).toHaveLength(N);
    expect(new Set(won).size).toBe(N);
    for (let i = 0; i < N; i++) expect(m.current(`/inbox/r${i}`)?.gen).toBe(2);
  });
});

describe('journal', () => {
  it('a torn last line (crash mid-write) loses only that line', () => {
    const dir = tmpDir();
    const j = new Journal(dir, 'w/1 x', selfIdentity());
    const base = { at: 1, workerId: 'w', fileUrl: '/a', fileType: 'csv', fileTimestamp: 'x', fingerprint: 'fp', fileSize: 1, version: 1, attempt: 1, retryCount: 0, token: 't', startedAt: 'x' };
    j.append([{ t: 'complete', stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 }, afterAction: null, ...base }], { sync: true });
    j.close();
    expect(path.basename(j.file)).toMatch(/^journal-w_1_x-\d+-\d+\.ndjson$/);
    expect(fs.statSync(j.file).mode & 0o777).toBe(0o600);
    fs.appendFileSync(j.file, '{"t":"complete","fileUrl":"/b","sta');
    const r = readJournal(j.file);
    expect(r.header).toMatchObject({ t: 'open', workerId: 'w/1 x' });
    expect(r.entries.map((e) => e.fileUrl)).toEqual(['/a']);
    expect(r.badLines).toBe(1);
  });
});
