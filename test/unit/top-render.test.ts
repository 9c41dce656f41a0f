/**
 * The `ckpt top` screen as a function of a snapshot and the terminal's size: every line within
 * the width, never more lines than rows, the lists sharing the rows that are left, and the
 * frame's escape codes (what tmux shows is tested in test/cli/top-tmux.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { renderTop, rate, share } from '../../src/cli/top/render.js';
import { frame } from '../../src/cli/top/screen.js';
import type { TopJson } from '../../src/cli/top/snapshot.js';

const NOW = Date.parse('2026-06-01T12:00:00.000Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function snapshot(inFlight: number, failures: number): TopJson {
  return {
    database: '/var/lib/ckpt/ckpt.db',
    generatedAt: new Date(NOW).toISOString(),
    counts: { pending: 4, processing: inFlight, completed: 100, failed: 1, dead: failures },
    total: 105 + inFlight + failures,
    oldestPending: { since: ago(42_000), ageSeconds: 42 },
    lastMinute: { completed: 60, failed: 1 },
    lastHour: { completed: 100, failed: 1 },
    mode: { state: 'normal', since: null, reason: null, workers: [] },
    handler: { available: true, unavailable: [] },
    workers: [{ workerId: 'box:1', host: 'box', pid: 1, mode: 'normal', modeSince: null, modeReason: null, startedAt: ago(600_000), heartbeatAt: ago(1_000), heartbeatAgeSeconds: 1, state: 'live' }],
    rates: [5_000, 60_000].map((windowMs) => ({ windowMs, discovered: 5, completed: 5, failed: 1, perSecond: { discovered: 5000 / windowMs, completed: 5000 / windowMs, failed: 1000 / windowMs } })),
    backlog: [{ folder: '/srv/in', fileType: 'csv', pending: 4, retrying: 1, oldestPendingAt: ago(42_000), oldestPendingAgeSeconds: 42 }],
    inFlight: Array.from({ length: inFlight }, (_, i) => ({
      fileUrl: `/srv/in/a-rather-long-folder-name/file-${i}.csv`,
      fileType: 'csv',
      workerId: 'box:1',
      attempt: 1,
      startedAt: ago(60_000 - i * 1_000),
      leaseExpiresAt: null,
      elapsedSeconds: 60 - i,
    })),
    failures: Array.from({ length: failures }, (_, i) => ({
      fileUrl: `/srv/in/bad-${i}.csv`,
      version: 1,
      attempt: 2,
      workerId: 'box:1',
      endedAt: ago(5_000 * (i + 1)),
      outcome: 'dead',
      errorMessage: 'exit code 65',
      summary: 'exit code 65: line 3: expected 2 columns, got 3',
    })),
  };
}

const view = (width: number, height: number) => ({ now: NOW, width, height, where: '/var/lib/ckpt/ckpt.db', problem: null, live: true });

describe('ckpt top screen', () => {
  it('fits any size: no line wider than the terminal, no more lines than rows', () => {
    for (const [w, h] of [[40, 12], [60, 24], [80, 24], [100, 40], [200, 60], [20, 5]] as const) {
      const lines = renderTop(snapshot(12, 8), view(w, h));
      expect(lines.length, `${w}x${h}`).toBeLessThanOrEqual(h);
      for (const l of lines) expect([...l].length, `${w}x${h}: ${l}`).toBeLessThanOrEqual(w);
      expect(lines[0]).toMatch(/^ckpt top/);
    }
  });

  it('on a short screen the lists share the rows: each keeps its first row, "… N more" for the rest', () => {
    const lines = renderTop(snapshot(12, 8), view(100, 30));
    expect(lines).toHaveLength(30);
    expect(lines).toContain('IN FLIGHT 12 (longest first)');
    // The longest-running file first.
    expect(lines.find((l) => l.includes('file-'))).toMatch(/1m 00s\s+1\s+box:1\s+\S+file-0\.csv$/);
    expect(lines.some((l) => /^… \d+ more$/.test(l))).toBe(true);
    expect(lines).toContain('LAST FAILURES');
    expect(lines.filter((l) => l.includes('bad-')).length).toBeGreaterThanOrEqual(1);
  });

  it('a tall screen shows every row and no "more" line', () => {
    const lines = renderTop(snapshot(12, 8), view(120, 80));
    expect(lines.filter((l) => /file-\d+\.csv$/.test(l))).toHaveLength(12);
    expect(lines.filter((l) => l.includes('bad-'))).toHaveLength(8);
    expect(lines.some((l) => l.startsWith('…'))).toBe(false);
  });

  it('a path keeps its end (the file name) when cut', () => {
    const lines = renderTop(snapshot(1, 0), view(60, 40));
    expect(lines.find((l) => l.includes('file-0'))).toMatch(/…\S+\/file-0\.csv$/);
  });

  it('rows are shared one at a time while any list wants more', () => {
    expect(share([10, 0, 1, 10], 7)).toEqual([3, 0, 1, 3]);
    expect(share([2, 2], 100)).toEqual([2, 2]);
    expect(share([5, 5], 0)).toEqual([0, 0]);
  });

  it('rates keep two figures when small', () => {
    expect([0, 1 / 60, 0.05, 0.15, 2.44, 118.4].map(rate)).toEqual(['0', '0.02', '0.05', '0.1', '2.4', '118']);
  });

  it('a frame: home, each line erased then written, the rest erased only when the frame is shorter', () => {
    expect(frame(['a', 'b'], 5)).toBe('\x1b[H\x1b[2Ka\r\n\x1b[2Kb\r\n\x1b[J');
    // A full frame ends on its last line: a newline there would scroll the screen.
    expect(frame(['a', 'b'], 2)).toBe('\x1b[H\x1b[2Ka\r\n\x1b[2Kb');
  });
});
