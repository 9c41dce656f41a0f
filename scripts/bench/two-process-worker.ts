/**
 * One of the processes of scenario 2 (scripts/bench/two-process.ts): opens the store, loads the
 * no-op module handler, says "ready", waits for "go" on stdin, drains the backlog with the real
 * Runner, and prints {done, ms, startEpoch, endEpoch} as JSON.
 *
 *   node --import tsx scripts/bench/two-process-worker.ts <db> <root> <concurrency> <workerId> <logFile>
 */
import { drainBacklog, noopModuleHandler } from './pipeline-parts.js';

const [db, root, conc, workerId, logFile] = process.argv.slice(2);
if (!db || !root || !conc || !workerId || !logFile) throw new Error('usage: two-process-worker.ts <db> <root> <concurrency> <workerId> <logFile>');

const handler = await noopModuleHandler();
const go = new Promise<void>((resolve) => {
  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    if (buf.includes('go')) resolve();
  });
});
// "ready" once the store is open: drainBacklog opens it before awaiting `go`.
setImmediate(() => process.stdout.write('ready\n'));
const r = await drainBacklog({ dbFile: db, root, handler, concurrency: Number(conc), logFile, workerId, go });
process.stdout.write(`${JSON.stringify(r)}\n`);
process.stdin.destroy();
