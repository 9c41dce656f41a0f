import { describe, expect, it } from 'vitest';
import { errorSummary, formatAgo, formatClock, formatCount, formatDuration, formatSpan, printable } from '../../src/ops/format.js';
import { formatKeyValues, formatTable } from '../../src/ops/table.js';

describe('format', () => {
  it('counts, durations, spans, clocks, ages', () => {
    expect(formatCount(1_204_331)).toBe('1,204,331');
    expect(formatCount(999)).toBe('999');
    expect(formatCount(-1000)).toBe('-1,000');
    expect([850, 4_240, 42_000, 185_000, 7_620_000, 273_600_000].map(formatDuration)).toEqual(['850ms', '4.2s', '42s', '3m 05s', '2h 07m', '3d 04h']);
    expect([15_000, 604_800_000, 5_400_000, 1_500, 0].map(formatSpan)).toEqual(['15s', '1w', '1h30m', '1s500ms', '0s']);
    expect([7_000, 750_000, 11_045_000, Number.NaN].map(formatClock)).toEqual(['0:07', '12:30', '3:04:05', '--:--']);
    const now = Date.UTC(2026, 0, 1, 12);
    expect(formatAgo(new Date(now - 90_000).toISOString(), now)).toBe('1m 30s ago');
    expect(formatAgo(new Date(now + 5_000).toISOString(), now)).toBe('in 5.0s');
    expect(formatAgo(null, now)).toBe('-');
  });

  it('printable() escapes control characters so a hostile name cannot break a table or drive the terminal', () => {
    expect(printable('plain name (1).csv')).toBe('plain name (1).csv');
    expect(printable('C:\\dir\\x.csv')).toBe('C:\\dir\\x.csv');
    expect(printable('a\nb\tc\u001b[2Jd\\e')).toBe('a\\nb\\tc\\x1b[2Jd\\\\e');
    expect(printable('über €')).toBe('über €');
  });

  it('errorSummary() picks the line that explains, after the exit code', () => {
    expect(errorSummary('exit code 1; stderr:\nconnecting...\nECONNREFUSED 127.0.0.1:9\n')).toBe('exit code 1: ECONNREFUSED 127.0.0.1:9');
    expect(errorSummary('timeout after 5000 ms')).toBe('timeout after 5000 ms');
    const nodeCrash = 'exit code 1; stderr:\nfile:///h.mjs:3\nthrow new Error("boom")\n^\n\nError: boom\n    at file:///h.mjs:3:7\n    at node:internal/x\n\nNode.js v20.20.2\n';
    expect(errorSummary(nodeCrash)).toBe('exit code 1: Error: boom');
    expect(errorSummary('x'.repeat(200), 10)).toBe(`${'x'.repeat(9)}…`);
    expect(errorSummary(null)).toBe('');
  });
});

describe('tables', () => {
  it('aligns columns, right-aligns numbers, leaves the last column unpadded', () => {
    const t = formatTable(
      [{ header: 'STATUS' }, { header: 'N', align: 'right' }, { header: 'FILE' }],
      [
        ['completed', '1,204', '/a'],
        ['dead', '3', '/a/very/long/path'],
      ],
    );
    expect(t).toBe(['STATUS         N  FILE', 'completed  1,204  /a', 'dead           3  /a/very/long/path'].join('\n'));
  });

  it('key/value blocks continue multi-line values under the value column', () => {
    expect(formatKeyValues([['status', 'dead'], ['error', 'line one\nline two']])).toBe('status  dead\nerror   line one\n        line two');
  });
});
