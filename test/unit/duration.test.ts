import { describe, expect, it } from 'vitest';
import { parsePurgeStatuses } from '../../src/cli/args.js';
import { parseDuration } from '../../src/config/duration.js';

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    [' 10S ', 10_000],
  ])('%s = %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '30', '7 days', 'd7', '1h30', '-5m', '1y'])('refuses %j and says what is accepted', (text) => {
    expect(() => parseDuration(text)).toThrow(/expected a duration such as 30s, 15m, 2h or 7d/);
  });

  it('asks for a unit on a bare number', () => expect(() => parseDuration('30')).toThrow(/add a unit/));
});

describe('purge --status', () => {
  it('accepts completed, dead, both, all', () => {
    expect(parsePurgeStatuses('completed')).toEqual(['completed']);
    expect(parsePurgeStatuses('dead,completed')).toEqual(['dead', 'completed']);
    expect(parsePurgeStatuses('all')).toEqual(['completed', 'dead']);
    expect(() => parsePurgeStatuses('failed')).toThrow(/only finished files can be purged/);
  });
});
