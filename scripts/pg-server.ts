/**
 * A throwaway PostgreSQL server for trying ckpt by hand (the same one the tests start): initdb
 * into a temp folder, a server on 127.0.0.1 and a free port, stopped and removed on Ctrl-C.
 * As root it runs as the "postgres" user (apt-get install postgresql).
 *
 *   npx tsx scripts/pg-server.ts            # prints the URL, then waits for Ctrl-C
 *   npx tsx scripts/pg-server.ts --durable  # with fsync/full_page_writes on (for benchmarks)
 *
 * Point ckpt at it with: export CKPT_PG_URL='<the URL>' and, in ckpt.config.json,
 * "database": { "urlEnv": "CKPT_PG_URL", "schema": "ckpt" }.
 */
import { startPgCluster } from '../test/helpers/postgres.js';

const cluster = await startPgCluster({ durable: process.argv.includes('--durable') });
if (typeof cluster === 'string') {
  console.error(`cannot start PostgreSQL: ${cluster}`);
  process.exit(69);
}
console.log(`PostgreSQL is up in ${cluster.dir} (server log: ${cluster.dir}/server.log)`);
console.log(`export CKPT_PG_URL='${cluster.url()}'`);
console.log('Ctrl-C stops it and removes the folder.');
const stop = async () => {
  await cluster.destroy();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
setInterval(() => undefined, 1 << 30);
