/**
 * `npm run soak -- --sink sqlite|postgres`: the sink chaos run (sink-chaos.ts) for as long as
 * the soak's --minutes/--seconds, with a throwaway PostgreSQL cluster for the postgres sink.
 * Prints one `sink-chaos:` line; exits 0 when every row is in the sink once (with --bypass:
 * when duplicates were found, which is what the bypassed run must show).
 */
import { startPgCluster } from '../../test/helpers/postgres.js';
import type { SoakOptions } from './options.js';
import { resultLine, runSinkChaos, type SinkChaosOptions } from './sink-chaos.js';

const EXIT_OK = 0;
const EXIT_VIOLATIONS = 1;
const EXIT_UNAVAILABLE = 69;

export async function runSinkSoak(opts: SoakOptions, cli: string): Promise<number> {
  const say = (msg: string): void => {
    if (opts.verbose) process.stderr.write(`[sink ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  };
  let destroy = async (): Promise<void> => undefined;
  let pgUrl: string | undefined;
  if (opts.sink === 'postgres') {
    const c = await startPgCluster();
    if (typeof c === 'string') {
      process.stderr.write(`soak: cannot start PostgreSQL: ${c}\n`);
      return EXIT_UNAVAILABLE;
    }
    pgUrl = c.url();
    destroy = () => c.destroy();
  }
  const o: SinkChaosOptions = {
    sink: opts.sink!,
    pgUrl,
    bypass: opts.bypass,
    cli,
    durationMs: opts.durationMs,
    rate: opts.rate,
    killEveryMs: opts.faultEveryMs,
    stopEveryMs: 30_000,
    leaseMs: opts.leaseMs,
    slowMs: 1_000,
    drainTimeoutMs: opts.drainTimeoutMs,
    seed: opts.seed,
    dir: opts.dir,
    keep: opts.keep,
    progress: say,
  };
  try {
    say(`sink ${o.sink}${o.bypass ? ' (helper bypassed)' : ''}: ${o.rate} files/s for ${o.durationMs / 1000} s, a kill every ~${o.killEveryMs} ms, lease ${o.leaseMs} ms`);
    const r = await runSinkChaos(o);
    process.stdout.write(`${resultLine(o, r)}\n`);
    process.stderr.write(`soak: seed ${o.seed}\n`);
    for (const p of r.problems) process.stderr.write(`- ${p}\n`);
    if (!r.ok || opts.keep) process.stderr.write(`soak: work folder kept: ${r.workDir}\n`);
    const pass = o.bypass ? r.duplicatedRows > 0 : r.ok;
    return pass ? EXIT_OK : EXIT_VIOLATIONS;
  } finally {
    await destroy();
  }
}
