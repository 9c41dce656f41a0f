/**
 * The database stays bounded under retention: a scaled-down month (scripts/bench/retention.ts
 * has the measured one) through the real SqliteStore with the clock moved, the daemon's
 * retention pass every simulated hour. After the longest path to deletion (dead 4 days;
 * tombstone 2 + 2 days) rows, tombstones and the file size stop growing. Without a tombstone
 * window, tombstones grow by one per file for ever.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type DaySample, simulate } from '../../scripts/bench/retention-sim.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const DAY = 86_400_000;
const windows = { completedMs: 2 * DAY, deadMs: 4 * DAY, tombstonesMs: 2 * DAY };

function run(tombstonesMs: number | null): Promise<DaySample[]> {
  // 30 files an hour, one in 10 dead; batches of 10 rows, so each pass takes several.
  return simulate({ file: path.join(tmpDir(), 'month.db'), days: 12, filesPerHour: 30, deadEvery: 10, retention: { ...windows, tombstonesMs }, batch: 10 });
}

/** max / min of a count over the days given (1 = flat). */
function spread(samples: DaySample[], pick: (s: DaySample) => number): number {
  const xs = samples.map(pick);
  return Math.max(...xs) / Math.min(...xs);
}

describe('retention over a simulated month', () => {
  it('rows, tombstones and the file size plateau once the longest window has passed', async () => {
    const days = await run(windows.tombstonesMs);
    const steady = days.slice(5); // days 6..12
    expect(steady.every((s) => s.purged.completed > 0 && s.purged.dead > 0 && s.purged.tombstones > 0)).toBe(true);
    expect(spread(steady, (s) => s.checkpoints)).toBeLessThan(1.02);
    expect(spread(steady, (s) => s.attempts)).toBeLessThan(1.02);
    expect(spread(steady, (s) => s.tombstones)).toBeLessThan(1.02);
    // Freed pages are reused: the file stops growing (SQLite does not give them back).
    expect(days[11]!.bytes).toBeLessThanOrEqual(days[5]!.bytes * 1.05);
    // What the windows predict (within an hour's files, the pass interval): 2 days of completed
    // files and 4 of dead ones; 2 days of tombstones.
    expect(Math.abs(days[11]!.checkpoints - 30 * 24 * (2 * 0.9 + 4 * 0.1))).toBeLessThanOrEqual(30);
    expect(Math.abs(days[11]!.tombstones - 30 * 24 * 2)).toBeLessThanOrEqual(30);
    // Growth before the plateau, for contrast: day 1 holds half of it, day 3 has no tombstones yet.
    expect(days[0]!.checkpoints).toBeLessThan(days[11]!.checkpoints * 0.5);
    expect(days[2]!.tombstones).toBeLessThan(days[11]!.tombstones * 0.5);
  });

  it('without a tombstone window, tombstones grow by one per purged file', async () => {
    const days = await run(null);
    expect(days[11]!.tombstones).toBeGreaterThan(days[5]!.tombstones * 1.8);
    expect(days[11]!.bytes).toBeGreaterThan(days[5]!.bytes * 1.1);
  });
});
