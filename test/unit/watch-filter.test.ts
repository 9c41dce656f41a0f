import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileFilter, DEFAULT_IGNORES } from '../../src/watch/filter.js';
import { fingerprintOf, sameVersion } from '../../src/file-identity.js';
import { escapePath } from '../../src/watch/scan.js';

describe('compileFilter', () => {
  it('takes every name when include is empty', () => {
    const f = compileFilter({ include: [], exclude: [], readyMarker: null });
    expect(f.isDataFile('a.csv')).toBe(true);
    expect(f.isDataFile('sub/deeper/b')).toBe(true);
  });

  it('matches a glob without a slash against the name at any depth', () => {
    const f = compileFilter({ include: ['*.csv'], exclude: [], readyMarker: null });
    expect(f.isDataFile('a.csv')).toBe(true);
    expect(f.isDataFile('sub/a.csv')).toBe(true);
    expect(f.isDataFile('a.json')).toBe(false);
    expect(f.isDataFile('a.csv.gz')).toBe(false);
  });

  it('matches a glob with a slash against the whole relative path', () => {
    const f = compileFilter({ include: ['in/*.json'], exclude: [], readyMarker: null });
    expect(f.isDataFile('in/a.json')).toBe(true);
    expect(f.isDataFile('a.json')).toBe(false);
    expect(f.isDataFile('x/in/a.json')).toBe(false);
  });

  it('lets exclude win over include', () => {
    const f = compileFilter({ include: ['*.csv'], exclude: ['skip-*', 'old/**'], readyMarker: null });
    expect(f.isDataFile('keep.csv')).toBe(true);
    expect(f.isDataFile('skip-1.csv')).toBe(false);
    expect(f.isDataFile('sub/skip-1.csv')).toBe(false);
    expect(f.isDataFile('old/a.csv')).toBe(false);
  });

  it('never takes default-ignored names, in any segment, in any case', () => {
    const f = compileFilter({ include: [], exclude: [], readyMarker: null });
    for (const name of ['.hidden.csv', 'a.tmp', 'a.TMP', 'a.part', 'a.partial', 'a.crdownload', 'a.filepart', 'a.swp', 'a.csv~']) {
      expect(f.isDataFile(name), name).toBe(false);
      expect(f.isDataFile(`sub/${name}`), name).toBe(false);
    }
    expect(f.isDataFile('.staging/a.csv')).toBe(false);
    expect(f.isPruned('.staging')).toBe(true);
    expect(f.isPruned('sub')).toBe(false);
    expect(f.isPruned('')).toBe(false);
    expect(f.isDataFile('temporary.csv')).toBe(true);
    expect(DEFAULT_IGNORES).toContain('*.tmp');
  });

  it('never takes a ready marker as data, and maps it to its data file', () => {
    const f = compileFilter({ include: [], exclude: [], readyMarker: '.done' });
    expect(f.isDataFile('x.csv.done')).toBe(false);
    expect(f.isDataFile('x.csv')).toBe(true);
    expect(f.markerTarget('x.csv.done')).toBe('x.csv');
    expect(f.markerTarget('sub/x.csv.done')).toBe('sub/x.csv');
    expect(f.markerTarget('x.csv')).toBeNull();
    // A marker alone, or the marker of a name that is not data, points at nothing.
    expect(f.markerTarget('.done')).toBeNull();
    expect(f.markerTarget('x.tmp.done')).toBeNull();
    const noMarker = compileFilter({ include: [], exclude: [], readyMarker: null });
    expect(noMarker.markerTarget('x.csv.done')).toBeNull();
    expect(noMarker.isDataFile('x.csv.done')).toBe(true);
  });

  it('markerTarget only ever names a data file (property)', () => {
    const f = compileFilter({ include: ['*.csv'], exclude: ['bad*'], readyMarker: '.ok' });
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z.~/]{1,12}$/), (rel) => {
        const t = f.markerTarget(rel);
        if (t !== null) expect(f.isDataFile(t)).toBe(true);
        if (t !== null) expect(f.isDataFile(rel)).toBe(false);
      }),
    );
  });
});

describe('fingerprintOf / sameVersion', () => {
  it('is size:trunc(mtimeMs):dev:ino', () => {
    expect(fingerprintOf({ size: 10, mtimeMs: 1700000000123.789, dev: 2049, ino: 77 })).toBe('10:1700000000123:2049:77');
  });

  it('sees a change of size, mtime or inode', () => {
    const a = { size: 1, mtimeMs: 5.5, dev: 1, ino: 2 };
    expect(sameVersion(a, { ...a })).toBe(true);
    expect(sameVersion(a, { ...a, size: 2 })).toBe(false);
    expect(sameVersion(a, { ...a, mtimeMs: 5.6 })).toBe(false);
    expect(sameVersion(a, { ...a, ino: 3 })).toBe(false);
  });
});

describe('escapePath', () => {
  it('shows bad bytes as \\xHH and keeps valid UTF-8', () => {
    const raw = Buffer.concat([Buffer.from('/d/é-'), Buffer.from([0xff, 0xfe]), Buffer.from('.csv')]);
    expect(escapePath(raw)).toBe('/d/é-\\xff\\xfe.csv');
    expect(escapePath(Buffer.from([0x61, 0x0a, 0x5c]))).toBe('a\\x0a\\x5c');
    expect(escapePath(Buffer.from([0xc3]))).toBe('\\xc3'); // truncated sequence
  });
});
