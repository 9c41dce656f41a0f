// A module handler that loads a CSV file into PostgreSQL exactly once.
//
//   "handler": { "module": "/opt/ckpt/sink-postgres-handler.mjs" }
//   environment: READINGS_URL=postgres://app@db.example/readings (the password in ~/.pgpass)
//   once, beforehand: CREATE TABLE readings (sensor TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL, value DOUBLE PRECISION);
//
// The CSV has a header line sensor,ts,value. The rows are written inside sink.once(), on one
// connection in one transaction that also records the run's idempotency key; a run whose key
// is already there writes nothing and returns the stats of the run that did.
import fs from 'node:fs';
import { PermanentError, PostgresSink } from 'ckpt';

const sink = await PostgresSink.open({ url: process.env.READINGS_URL });

export default async function load(file, ctx) {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  if (header !== 'sensor,ts,value') throw new PermanentError(`unexpected header: ${header}`);
  const rows = lines.map((l) => l.split(','));
  const good = rows.filter((r) => r.length === 3 && r[2] !== '' && Number.isFinite(Number(r[2])));

  const result = await sink.once(ctx, async (tx) => {
    // Multi-row INSERTs of up to 1000 rows: one round trip each, under PostgreSQL's limit of
    // 65,535 parameters a statement.
    for (let i = 0; i < good.length; i += 1000) {
      const chunk = good.slice(i, i + 1000);
      const values = chunk.map((_, j) => `($${3 * j + 1}, $${3 * j + 2}, $${3 * j + 3})`).join(', ');
      await tx.query(`INSERT INTO readings (sensor, ts, value) VALUES ${values}`, chunk.flat());
    }
    return { total: rows.length, filtered: rows.length - good.length, persisted: good.length };
  });
  if (result.alreadyApplied) ctx.logger.info({ appliedAt: result.appliedAt }, 'already in the sink: nothing written');
  return result;
}
