import { afterEach, describe, expect, it } from 'vitest';
import { judge, isReady, StabilityTracker } from '../../src/watch/readiness.js';

const st = (size: number, mtimeMs = 1000, ino = 1) => ({ size, mtimeMs, dev: 1, ino });

describe('judge', () => {
  const base = { stableMs: 100, markerRequired: false, markerPresent: false };

  it('is ready when unchanged for at least stableMs', () => {
    expect(judge({ ...base, prev: st(5), prevAt: 0, cur: st(5), curAt: 100 })).toBe('ready');
    expect(isReady({ ...base, prev: st(5), prevAt: 0, cur: st(5), curAt: 100 })).toBe(true);
  });

  it('is too soon below stableMs', () => {
    expect(judge({ ...base, prev: st(5), prevAt: 0, cur: st(5), curAt: 99 })).toBe('too-soon');
  });

  it('sees growth, a new mtime and a new inode as changed', () => {
    expect(judge({ ...base, prev: st(5), prevAt: 0, cur: st(6), curAt: 500 })).toBe('changed');
    expect(judge({ ...base, prev: st(5), prevAt: 0, cur: st(5, 1001), curAt: 500 })).toBe('changed');
    expect(judge({ ...base, prev: st(5), prevAt: 0, cur: st(5, 1000, 2), curAt: 500 })).toBe('changed');
  });

  it('waits for the marker when one is required', () => {
    const o = { ...base, markerRequired: true, prev: st(5), prevAt: 0, cur: st(5), curAt: 100 };
    expect(judge({ ...o, markerPresent: false })).toBe('awaiting-marker');
    expect(judge({ ...o, markerPresent: true })).toBe('ready');
  });
});

describe('StabilityTracker', () => {
  let tracker: StabilityTracker<string> | null = null;
  afterEach(() => tracker?.close());

  function make(capacity = 10) {
    const clock = { t: 0 };
    // A stableMs far beyond the test's run: the timer never fires; due() is driven by `clock`.
    tracker = new StabilityTracker<string>({
      stableMs: 1_000_000,
      capacity,
      now: () => clock.t,
      onDue: async () => undefined,
      onError: () => undefined,
    });
    return { t: tracker, clock };
  }

  it('hands out due entries earliest first, and keeps a deadline when the stat did not move', () => {
    const { t, clock } = make();
    expect(t.observe('/a', st(1), 'f')).toBe('tracking');
    clock.t = 10;
    expect(t.observe('/b', st(1), 'f')).toBe('tracking');
    clock.t = 20;
    expect(t.observe('/a', st(1), 'f')).toBe('unchanged');
    expect(t.due(10)).toEqual([]);
    clock.t = 1_000_005;
    expect(t.due(10).map(([p]) => p)).toEqual(['/a']);
    clock.t = 1_000_010;
    expect(t.due(10).map(([p]) => p)).toEqual(['/a', '/b']);
    expect(t.due(1).map(([p]) => p)).toEqual(['/a']);
  });

  it('moves a changed file to the back with a new deadline', () => {
    const { t, clock } = make();
    t.observe('/a', st(1), 'f');
    t.observe('/b', st(1), 'f');
    clock.t = 50;
    expect(t.observe('/a', st(2), 'f')).toBe('tracking');
    clock.t = 1_000_000;
    expect(t.due(10).map(([p]) => p)).toEqual(['/b']);
    const [[, entryB]] = t.due(1) as [[string, NonNullable<ReturnType<typeof t.get>>]];
    t.rearm('/b', entryB, st(3));
    clock.t = 1_000_050;
    expect(t.due(10).map(([p]) => p)).toEqual(['/a']);
  });

  it('says full at capacity (counting the reserve), but still updates tracked files', () => {
    const { t } = make(2);
    expect(t.observe('/a', st(1), 'f')).toBe('tracking');
    expect(t.observe('/b', st(1), 'f', 1)).toBe('full');
    expect(t.observe('/b', st(1), 'f')).toBe('tracking');
    expect(t.observe('/c', st(1), 'f')).toBe('full');
    expect(t.observe('/a', st(2), 'f')).toBe('tracking');
    expect(t.size).toBe(2);
  });

  it('ignores a stale entry on rearm and forget', () => {
    const { t } = make();
    t.observe('/a', st(1), 'f');
    const old = t.get('/a');
    t.observe('/a', st(2), 'f');
    if (old === undefined) throw new Error('tracked');
    expect(t.isCurrent('/a', old)).toBe(false);
    expect(t.forget('/a', old)).toBe(false);
    t.rearm('/a', old, st(9));
    expect(t.get('/a')?.stat.size).toBe(2);
    expect(t.forget('/a')).toBe(true);
  });

  it('forgets a whole folder', () => {
    const { t } = make();
    t.observe('/w/a', st(1), 'f');
    t.observe('/w/sub/b', st(1), 'f');
    t.observe('/w2/c', st(1), 'f');
    expect(t.forgetUnder('/w/')).toBe(2);
    expect(t.has('/w2/c')).toBe(true);
  });

  it('treats an entry far in the future (clock stepped back) as due', () => {
    const { t, clock } = make();
    clock.t = 5_000_000;
    t.observe('/a', st(1), 'f');
    clock.t = 0;
    expect(t.due(10).map(([p]) => p)).toEqual(['/a']);
  });
});
