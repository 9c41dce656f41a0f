// The module handler of the sink chaos run (scripts/soak/sink-chaos.ts): loads each CSV's rows
// into table `rows` of the sink through SqliteSink/PostgresSink.once(), or, with SINK_BYPASS=1,
// with plain inserts (no transaction, no key) to show that the check sees duplicates.
//
// Environment: SINK_KIND sqlite|postgres, SINK_TARGET (file or URL), SINK_RECORDS (a JSON-lines
// file this appends to: one "run" line per call, one "applied"/"already" line per success),
// SINK_SLOW_MS (a file named *-slow.csv spends about this long writing its rows, so that kills
// land mid-write).
import fs from 'node:fs';
import path from 'node:path';
import { PostgresSink, SqliteSink } from 'ckpt';

const KIND = process.env.SINK_KIND;
const TARGET = process.env.SINK_TARGET;
const RECORDS = process.env.SINK_RECORDS;
const BYPASS = process.env.SINK_BYPASS === '1';
const SLOW_MS = Number(process.env.SINK_SLOW_MS ?? 1000);
if ((KIND !== 'sqlite' && KIND !== 'postgres') || !TARGET || !RECORDS) throw new Error('set SINK_KIND (sqlite|postgres), SINK_TARGET and SINK_RECORDS');

const sink = KIND === 'sqlite' ? SqliteSink.open(TARGET) : await PostgresSink.open({ url: TARGET });
const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const record = (ev, file, ctx) => fs.appendFileSync(RECORDS, `${JSON.stringify({ ev, file, attempt: ctx.attempt, pid: process.pid })}\n`);

function parse(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(1);
  return lines.map((l) => {
    const [name, line, value] = l.split(',');
    return [name, Number(line), Number(value)];
  });
}

export default async function load(file, ctx) {
  const name = path.basename(file);
  record('run', name, ctx);
  const rows = parse(file);
  const pauseEvery = Math.max(1, Math.floor(rows.length / 10));
  const pauseMs = name.endsWith('-slow.csv') ? SLOW_MS / 10 : 0;
  const stats = { total: rows.length, filtered: 0, persisted: rows.length };
  let result;
  if (BYPASS) {
    for (let i = 0; i < rows.length; i++) {
      if (KIND === 'sqlite') sink.db.prepare('INSERT INTO rows (file, line, value) VALUES (?, ?, ?)').run(...rows[i]);
      else await sink.pool.query('INSERT INTO rows (file, line, value) VALUES ($1, $2, $3)', rows[i]);
      if (pauseMs && i % pauseEvery === 0) await sleep(pauseMs);
    }
    result = { ...stats, alreadyApplied: false };
  } else if (KIND === 'sqlite') {
    result = await sink.once(ctx, (tx) => {
      const ins = tx.prepare('INSERT INTO rows (file, line, value) VALUES (?, ?, ?)');
      for (let i = 0; i < rows.length; i++) {
        ins.run(...rows[i]);
        // Synchronous, as the write itself: the daemon is blocked here, and a SIGKILL lands
        // inside the open transaction.
        if (pauseMs && i % pauseEvery === 0) sleepSync(pauseMs);
      }
      return stats;
    });
  } else {
    result = await sink.once(ctx, async (tx) => {
      for (let i = 0; i < rows.length; i++) {
        await tx.query('INSERT INTO rows (file, line, value) VALUES ($1, $2, $3)', rows[i]);
        if (pauseMs && i % pauseEvery === 0) await sleep(pauseMs);
      }
      return stats;
    });
  }
  record(result.alreadyApplied ? 'already' : 'applied', name, ctx);
  return result;
}
