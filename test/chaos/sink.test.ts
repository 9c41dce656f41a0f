/**
 * Exactly-once effects into a sink database under SIGKILL, real processes: three daemons, a
 * SIGKILL every 1-2 s and one SIGSTOP past the lease, a module handler loading each CSV's rows
 * into the sink through SqliteSink/PostgresSink.once() (scripts/soak/sink-chaos.ts). Every row
 * must be in the sink exactly once while the handler ran files more than once. The same run
 * with the helper bypassed (plain inserts) must show duplicates: the check can see a failure.
 * The long form is `npm run soak -- --sink sqlite|postgres --minutes 30`.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SinkChaosOptions, resultLine, runSinkChaos } from '../../scripts/soak/sink-chaos.js';
import { type PgCluster, pgClusterForTests } from '../helpers/postgres.js';
import { REPO } from '../helpers/spawn.js';

/**
 * 20 s of faults at 2 files/s (40 files of 20-80 rows, a third of them slow: 1 s of writing),
 * a kill every 0.75-2.25 s (about 13) and one SIGSTOP of lease + 1-2 s a third of the way in.
 * About 35 s a run on the loaded 2-core box, drain included.
 */
const BASE: Omit<SinkChaosOptions, 'sink' | 'bypass'> = {
  cli: path.join(REPO, 'dist/cli/main.js'),
  durationMs: 20_000,
  rate: 2,
  killEveryMs: 1_500,
  stopEveryMs: 20_000,
  leaseMs: 3_000,
  slowMs: 1_000,
  drainTimeoutMs: 60_000,
  seed: Date.now() % 2_147_483_647,
};
const LIMIT_MS = 110_000;

let cluster: PgCluster | null = null;
beforeAll(async () => {
  cluster = await pgClusterForTests('sink chaos');
}, 60_000);
afterAll(async () => cluster?.destroy());

async function chaos(o: SinkChaosOptions) {
  const r = await runSinkChaos(o);
  const line = `${resultLine(o, r)} (seed ${o.seed})`;
  console.log(line);
  return { r, line };
}

/** Every row in the sink exactly once (count and checksum), while kills made the handler run files again. */
function expectEveryRowOnce(r: Awaited<ReturnType<typeof chaos>>['r'], line: string): void {
  expect(r.problems, `${line}\nkept: ${r.workDir}`).toEqual([]);
  expect([r.rowsInSink, r.duplicatedRows, r.missingRows, r.checksumMatches]).toEqual([r.rowsDropped, 0, 0, true]);
  expect(r.filesRunMoreThanOnce, line).toBeGreaterThan(0);
  expect(r.kills, line).toBeGreaterThan(5);
}

describe('exactly-once sink under SIGKILL and SIGSTOP (three daemons)', () => {
  it(
    'SQLite sink: every row once (count and checksum), while the handler ran files more than once',
    async () => {
      const { r, line } = await chaos({ ...BASE, sink: 'sqlite', bypass: false });
      expectEveryRowOnce(r, line);
    },
    LIMIT_MS,
  );

  it(
    'PostgreSQL sink: every row once (count and checksum), while the handler ran files more than once',
    async (t) => {
      if (!cluster) return t.skip();
      const { r, line } = await chaos({ ...BASE, sink: 'postgres', pgUrl: cluster.url(), bypass: false });
      expectEveryRowOnce(r, line);
    },
    LIMIT_MS,
  );

  it(
    'the same run with the helper bypassed (plain inserts) leaves duplicated rows: the check sees a failure',
    async () => {
      const { r, line } = await chaos({ ...BASE, sink: 'sqlite', bypass: true });
      expect(r.duplicatedRows, line).toBeGreaterThan(0);
      expect(r.checksumMatches, line).toBe(false);
    },
    LIMIT_MS,
  );
});
