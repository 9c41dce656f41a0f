/**
 * The soak's command line. Everything has a default, so `npm run soak` alone runs one minute
 * with three daemons at 200 files a second.
 */
import { parseArgs } from 'node:util';

export const FAULT_KINDS = ['kill', 'stop', 'term', 'lock', 'corrupt'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * `lock` and `corrupt` need the database fallback (issue 4): without it a lock held longer
 * than a lease makes leases run out and files run again, and a corrupt database stops every
 * daemon. src/daemon.ts opens the FallbackStore (src/store/fallback/) since 2026-11-28, so all
 * five are on by default; `--faults kill,stop,term` is the set for a build without it.
 */
export const DEFAULT_FAULTS: readonly FaultKind[] = ['kill', 'stop', 'term', 'lock', 'corrupt'];

export interface SoakOptions {
  /** How long the producer drops files and faults are injected. */
  durationMs: number;
  daemons: number;
  /** Files dropped per second. */
  rate: number;
  faults: FaultKind[];
  /** Mean time between two faults. */
  faultEveryMs: number;
  seed: number;
  concurrency: number;
  leaseMs: number;
  /** lockTimeoutMs of the daemons: how long a write waits on a lock before degraded mode. */
  lockTimeoutMs: number;
  stableMs: number;
  rescanMs: number;
  shutdownGraceMs: number;
  /** How long the daemons get to finish everything after the producer stopped. */
  drainTimeoutMs: number;
  /** How long the sqlite3 shell holds BEGIN EXCLUSIVE (a random value in this range). */
  lockHoldMs: [number, number];
  /** Run `npm run build` first (off when the caller built dist/ already, as `npm test` does). */
  build: boolean;
  /** Keep the work folder even when every check passed. */
  keep: boolean;
  /** Parent of the work folder (default the OS temp folder). */
  dir: string | undefined;
  /** Print progress lines while running. */
  verbose: boolean;
  /** The ckpt CLI to run (default dist/cli/main.js of this repository). */
  cli: string | undefined;
  /** Run the sink chaos run (sink-chaos.ts) into this kind of sink instead of the ledger soak. */
  sink: 'sqlite' | 'postgres' | undefined;
  /** With --sink: the handler inserts without the helper (the check must find duplicates). */
  bypass: boolean;
}

const USAGE = `usage: node --import tsx scripts/soak/run.ts [options]   (npm run soak -- [options])
  --minutes N | --seconds N   how long files are dropped and faults injected (default 60 s)
  --daemons N                 ckpt run processes on one database and inbox (default 3)
  --rate N                    files dropped per second (default 200)
  --faults LIST               comma list of ${FAULT_KINDS.join(',')} (default ${DEFAULT_FAULTS.join(',')}), or "none"
  --fault-every SECONDS       mean time between faults (default 5)
  --seed N                    random seed (default: time based; printed in the summary)
  --concurrency N             handlers per daemon (default 8)
  --lease-ms N                leaseMs of the daemons (default 10000)
  --lock-timeout-ms N         lockTimeoutMs of the daemons (default 2000)
  --stable-ms N               stableMs of the daemons (default 500)
  --drain-seconds N           time allowed to finish after the producer stops (default 120)
  --lock-ms MIN-MAX           how long the sqlite3 shell holds BEGIN EXCLUSIVE (default 2000 to half the lease)
  --no-build                  do not run npm run build first
  --keep                      keep the work folder even when all checks pass
  --dir DIR                   where to create the work folder (default the OS temp folder)
  --quiet                     no progress lines, only the summary
  --cli FILE                  the ckpt CLI to run (default dist/cli/main.js; a copy of dist/ keeps a
                              long run on one build while the tree is rebuilt)
  --sink sqlite|postgres      instead: CSV rows loaded into a sink database through SqliteSink/PostgresSink.once()
                              under SIGKILL (every --fault-every s, default 1.5) and a SIGSTOP past the lease
                              every 30 s; checks every row is in the sink once (default rate 2/s, lease 3000 ms)
  --bypass                    with --sink: plain inserts instead of the helper (must report duplicates)`;

export class UsageError extends Error {
  override name = 'UsageError';
}

function num(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name}: expected a number >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

export function parseOptions(argv: readonly string[]): SoakOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        minutes: { type: 'string' },
        seconds: { type: 'string' },
        daemons: { type: 'string' },
        rate: { type: 'string' },
        faults: { type: 'string' },
        'fault-every': { type: 'string' },
        seed: { type: 'string' },
        concurrency: { type: 'string' },
        'lease-ms': { type: 'string' },
        'lock-timeout-ms': { type: 'string' },
        'stable-ms': { type: 'string' },
        'drain-seconds': { type: 'string' },
        'lock-ms': { type: 'string' },
        'no-build': { type: 'boolean' },
        keep: { type: 'boolean' },
        dir: { type: 'string' },
        quiet: { type: 'boolean' },
        cli: { type: 'string' },
        sink: { type: 'string' },
        bypass: { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) throw new UsageError(USAGE);
  if (values.minutes !== undefined && values.seconds !== undefined) throw new UsageError('give --minutes or --seconds, not both');
  const durationMs =
    values.minutes !== undefined ? num(values.minutes, 'minutes', 1, 0.01) * 60_000 : num(values.seconds, 'seconds', 60, 1) * 1000;

  let faults: FaultKind[] = [...DEFAULT_FAULTS];
  if (values.faults !== undefined) {
    faults = [];
    for (const f of values.faults.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (f === 'none') continue;
      if (!(FAULT_KINDS as readonly string[]).includes(f)) throw new UsageError(`--faults: unknown fault ${JSON.stringify(f)} (known: ${FAULT_KINDS.join(', ')})`);
      faults.push(f as FaultKind);
    }
  }
  if (values.sink !== undefined && values.sink !== 'sqlite' && values.sink !== 'postgres') throw new UsageError(`--sink: expected sqlite or postgres, got ${JSON.stringify(values.sink)}`);
  if (values.bypass && values.sink === undefined) throw new UsageError('--bypass needs --sink');
  const sink = values.sink as 'sqlite' | 'postgres' | undefined;
  const leaseMs = num(values['lease-ms'], 'lease-ms', sink ? 3_000 : 10_000, 500);
  // A lock longer than about 2/3 of the lease outlasts the renewals (they run every lease/3),
  // so the claims of live workers expire and are taken over: measured in the first 30-minute
  // run (4 s lease, 2-4 s locks: 25 re-runs of files whose worker was fine). Half the lease
  // keeps the lock fault about degraded mode, not about leases; --lock-ms goes further.
  let lockHoldMs: [number, number] = [2000, Math.max(2000, Math.floor(leaseMs / 2))];
  if (values['lock-ms'] !== undefined) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(values['lock-ms']);
    if (!m) throw new UsageError(`--lock-ms: expected MIN-MAX in milliseconds, got ${JSON.stringify(values['lock-ms'])}`);
    const lo = Number(m[1]);
    lockHoldMs = [lo, m[2] === undefined ? lo : Math.max(lo, Number(m[2]))];
  }
  return {
    durationMs,
    daemons: Math.floor(num(values.daemons, 'daemons', 3, 1)),
    // A sink run writes every row of every file, a third of them slowly (1 s): 2 files/s keeps
    // a SQLite sink's single writer busy about 60% of the time.
    rate: num(values.rate, 'rate', sink ? 2 : 200, 0.1),
    faults,
    faultEveryMs: num(values['fault-every'], 'fault-every', sink ? 1.5 : 5, 0.1) * 1000,
    seed: Math.floor(num(values.seed, 'seed', Date.now() % 2_147_483_647, 0)),
    concurrency: Math.floor(num(values.concurrency, 'concurrency', 8, 1)),
    leaseMs,
    lockTimeoutMs: num(values['lock-timeout-ms'], 'lock-timeout-ms', 2_000, 0),
    stableMs: num(values['stable-ms'], 'stable-ms', 500, 50),
    rescanMs: 5_000,
    shutdownGraceMs: 2_000,
    drainTimeoutMs: num(values['drain-seconds'], 'drain-seconds', 120, 1) * 1000,
    lockHoldMs,
    build: !values['no-build'],
    keep: values.keep ?? false,
    dir: values.dir,
    verbose: !values.quiet,
    cli: values.cli,
    sink,
    bypass: values.bypass ?? false,
  };
}
