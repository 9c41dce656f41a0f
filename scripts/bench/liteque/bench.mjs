// liteque 0.8.0 for ckpt's pipeline benchmark (scripts/bench/pipeline.ts runs it as a child).
// Lives in its own folder because liteque needs better-sqlite3 < 11.10 ("Transaction function
// cannot return a promise" from 11.10 on) and ckpt needs better-sqlite3 12.
//
//   node scripts/bench/liteque/bench.mjs <jobs> <dbFile> [concurrency]
//
// Settings: its README's Runner with pollIntervalMs 10 (README: 1000; it only waits when a
// dequeue finds nothing), timeoutSecs 60, no validator, keepFailedJobs false, numRetries 0.
// Prints one JSON line {jobs, ms, rate}, timed from the first enqueue to the end of
// runUntilEmpty().
import { buildDBClient, Runner, SqliteQueue } from 'liteque';

const jobs = Number(process.argv[2] ?? 1000);
const dbFile = process.argv[3];
const concurrency = Number(process.argv[4] ?? 4);
if (!dbFile) throw new Error('usage: bench.mjs <jobs> <dbFile> [concurrency]');

const db = buildDBClient(dbFile, { runMigrations: true });
const queue = new SqliteQueue('bench', db, { defaultJobArgs: { numRetries: 0 }, keepFailedJobs: false });
let done = 0;
const t0 = performance.now();
for (let i = 0; i < jobs; i++) await queue.enqueue({ path: `/bench/in/f${i}.csv` });
const runner = new Runner(
  queue,
  {
    run: async () => undefined,
    onComplete: async () => {
      done++;
    },
  },
  { concurrency, pollIntervalMs: 10, timeoutSecs: 60 },
);
await runner.runUntilEmpty();
const ms = performance.now() - t0;
if (done !== jobs) throw new Error(`liteque completed ${done} of ${jobs}`);
// liteque leaves a timeoutSecs timer per job behind (the process lingered 60 s): exit now.
process.stdout.write(`${JSON.stringify({ jobs, ms, rate: (jobs / ms) * 1000 })}\n`, () => process.exit(0));
