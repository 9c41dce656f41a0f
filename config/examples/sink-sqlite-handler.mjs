// A module handler that loads a CSV file into a SQLite database exactly once.
//
//   "handler": { "module": "/opt/ckpt/sink-sqlite-handler.mjs" }
//   environment: READINGS_DB=/var/lib/app/readings.db
//   once, beforehand: sqlite3 /var/lib/app/readings.db \
//     'CREATE TABLE readings (sensor TEXT NOT NULL, ts TEXT NOT NULL, value REAL)'
//
// The CSV has a header line sensor,ts,value. The file is read and checked before the
// transaction; the rows are written inside sink.once(), which commits them together with the
// run's idempotency key, or, when the key is already there (a re-run after a crash, or a worker
// whose claim was taken over), writes nothing and returns the stats of the run that did.
import fs from 'node:fs';
import { PermanentError, SqliteSink } from 'ckpt';

const sink = SqliteSink.open(process.env.READINGS_DB ?? '/var/lib/app/readings.db');

export default async function load(file, ctx) {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  if (header !== 'sensor,ts,value') throw new PermanentError(`unexpected header: ${header}`);
  const rows = lines.map((l) => l.split(','));
  const good = rows.filter((r) => r.length === 3 && r[2] !== '' && Number.isFinite(Number(r[2])));

  const result = await sink.once(ctx, (tx) => {
    // Synchronous: better-sqlite3 cannot hold a transaction open across an await.
    const insert = tx.prepare('INSERT INTO readings (sensor, ts, value) VALUES (?, ?, ?)');
    for (const [sensor, ts, value] of good) insert.run(sensor, ts, Number(value));
    return { total: rows.length, filtered: rows.length - good.length, persisted: good.length };
  });
  if (result.alreadyApplied) ctx.logger.info({ appliedAt: result.appliedAt }, 'already in the sink: nothing written');
  return result;
}
