/**
 * One worker process of scripts/bench/pg-claim-complete.ts: claims batches and completes them
 * until nothing is left, on SQLite or PostgreSQL.
 *
 * argv: sqlite FILE WORKER_ID BATCH | postgres SCHEMA WORKER_ID BATCH (URL in $CKPT_PG_URL)
 * Prints "ready" once connected, waits for a line on stdin, runs, prints "done COUNT END_MS".
 */
import { createInterface } from 'node:readline';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { CheckpointStore } from '../../src/store/types.js';

const [kind, target, workerId, batchArg] = process.argv.slice(2);
if (!kind || !target || !workerId) throw new Error('usage: pg-claim-complete-worker sqlite|postgres FILE|SCHEMA WORKER_ID BATCH');
const batch = Number(batchArg ?? '64');
const store: CheckpointStore =
  kind === 'sqlite'
    ? new SqliteStore(target, { lockTimeoutMs: 60_000, busyTimeoutMs: 100 })
    : await PostgresStore.connect({ url: process.env.CKPT_PG_URL ?? '', schema: target, maxConnections: 1 });
await store.counts(); // connected, statements ready
process.stdout.write('ready\n');
await new Promise<void>((resolve) => {
  const rl = createInterface({ input: process.stdin });
  rl.once('line', () => {
    // Let go of stdin, or the open pipe keeps this process (and the parent) alive at the end.
    rl.close();
    process.stdin.destroy();
    resolve();
  });
});

const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 0 };
let n = 0;
for (;;) {
  const cs = await store.claim(batch, { workerId, leaseMs: 600_000, now: Date.now() });
  if (cs.length === 0) break;
  const res = await store.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats, now: Date.now() })));
  if (res.some((r) => r !== 'ok')) throw new Error(`${workerId}: a completion was refused`);
  n += cs.length;
}
const end = Date.now();
await store.close();
process.stdout.write(`done ${n} ${end}\n`);
