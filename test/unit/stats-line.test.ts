import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkStats, lastNonEmptyLine, parseStatsLine, readStatsLine } from '../../src/run/stats-line.js';

describe('stats line', () => {
  it('reads the last non-empty line', () => {
    expect(parseStatsLine('loading...\n{"total":10,"filtered":2,"persisted":8}\n')).toEqual({ total: 10, filtered: 2, persisted: 8 });
    expect(parseStatsLine('{"total":1,"filtered":0,"persisted":1}\r\n\r\n   \n\t\n')).toEqual({ total: 1, filtered: 0, persisted: 1 });
    expect(parseStatsLine('  {"persisted":3, "total":3, "filtered":0, "note":"extra keys are ignored"}  ')).toEqual({
      total: 3,
      filtered: 0,
      persisted: 3,
    });
  });

  it('only the LAST non-empty line counts', () => {
    expect(parseStatsLine('{"total":1,"filtered":0,"persisted":1}\ndone\n')).toBeNull();
  });

  it('no output, plain text, or a JSON log line without stats keys: null, no complaint', () => {
    for (const out of ['', '\n\n', 'all good\n', '{"level":30,"msg":"done"}\n', '[1,2,3]']) {
      expect(readStatsLine(out)).toEqual({ stats: null, rejected: null });
    }
  });

  it('a stats line that is malformed or has wrong types is ignored with a reason', () => {
    const cases = [
      '{"total":1,"filtered":0,"persisted":1',
      '{"total":-1,"filtered":0,"persisted":1}',
      '{"total":1.5,"filtered":0,"persisted":1}',
      '{"total":"1","filtered":0,"persisted":1}',
      '{"total":1,"filtered":0}',
      '{"total":1e400,"filtered":0,"persisted":1}',
      '{"total":9007199254740993,"filtered":0,"persisted":1}',
      '{"total":null,"filtered":0,"persisted":1}',
    ];
    for (const line of cases) {
      const r = readStatsLine(`work\n${line}\n`);
      expect(r.stats, line).toBeNull();
      expect(r.rejected, line).toMatch(/stats|JSON/);
    }
  });

  it('-0 becomes 0', () => {
    expect(parseStatsLine('{"total":-0,"filtered":0,"persisted":0}')).toEqual({ total: 0, filtered: 0, persisted: 0 });
    expect(Object.is(parseStatsLine('{"total":-0,"filtered":0,"persisted":0}')?.total, 0)).toBe(true);
  });

  it('checkStats validates returned objects', () => {
    expect(checkStats({ total: 2, filtered: 1, persisted: 1 })).toEqual({ stats: { total: 2, filtered: 1, persisted: 1 } });
    expect(checkStats(null)).toHaveProperty('problem');
    expect(checkStats([1, 2, 3])).toHaveProperty('problem');
    expect(checkStats('{"total":1}')).toHaveProperty('problem');
    expect(checkStats({ total: 2n, filtered: 1, persisted: 1 })).toHaveProperty('problem');
  });

  it('lastNonEmptyLine', () => {
    expect(lastNonEmptyLine('a\nb\n\n')).toBe('b');
    expect(lastNonEmptyLine('\n \n')).toBeNull();
    expect(lastNonEmptyLine('only')).toBe('only');
  });
});

describe('stats line properties', () => {
  const count = fc.nat({ max: Number.MAX_SAFE_INTEGER });
  const statsArb = fc.record({ total: count, filtered: count, persisted: count });
  const blank = fc.array(fc.constantFrom('', ' ', '\t', '\r'), { maxLength: 3 }).map((a) => a.join(''));

  it('any string: returns valid stats or null, never throws', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.json(), fc.string({ unit: 'grapheme' })), (s) => {
        const r = readStatsLine(s);
        if (r.stats !== null) {
          expect(checkStats(r.stats)).toEqual({ stats: r.stats });
          expect(r.rejected).toBeNull();
        }
        expect(parseStatsLine(s)).toEqual(r.stats);
      }),
      { numRuns: 2000 },
    );
  });

  it('any JSON value as the last line: never throws', () => {
    fc.assert(
      fc.property(fc.string(), fc.jsonValue(), (before, v) => {
        const r = readStatsLine(`${before}\n${JSON.stringify(v)}\n`);
        if (r.stats !== null) expect(Number.isSafeInteger(r.stats.total)).toBe(true);
      }),
    );
  });

  it('a valid stats line after any output, followed by blank lines, round-trips', () => {
    fc.assert(
      fc.property(fc.string(), statsArb, fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }), blank, (before, stats, extra, after) => {
        const line = JSON.stringify({ ...extra, ...stats });
        expect(parseStatsLine(`${before}\n${line}\n${after}\n${after}`)).toEqual(stats);
      }),
    );
  });
});
