/**
 * The SQLite side of `activity()` (what `ckpt top` shows), kept out of sqlite-store.ts: read-only
 * statements over the same tables, run in one read transaction so that the counts, the rates
 * and the lists agree with each other. file_checkpoints is scanned once per refresh: the counts
 * by status and the files discovered in each window come from the same pass.
 */
import type Database from 'better-sqlite3';
import type { SqliteDatabase } from './open-database.js';
import { byBacklog, toBacklogGroup, toInFlight, toRecentFailure } from './activity.js';
import type { Row } from './record.js';
import { iso } from './time.js';
import type { Activity, ActivityQuery, Status, StoreStats, WorkerRecord } from './types.js';

/** The store's own reads that a refresh includes, run inside the refresh's transaction. */
export interface ActivityParts {
  stats(counts: Record<Status, number>, now: number): StoreStats;
  workers(): WorkerRecord[];
}

// Over 60 lines only for its table of statements, one entry each (as sqlite-statements.ts).
export function prepareActivity(db: SqliteDatabase, parts: ActivityParts) {
  const p = (sql: string) => db.prepare(sql);
  const s = {
    outcomesIn: p(
      `SELECT sum(outcome = 'completed') AS c, sum(outcome NOT IN ('completed', 'released')) AS f
         FROM file_attempts WHERE ended_at >= ?`,
    ),
    // The folder is the path up to its last '/': rtrim() strips every character that is not a
    // '/' from the end. The WHERE is fc_ready's literal condition, so only ready rows are read.
    backlog: p(
      `SELECT rtrim(file_url, replace(file_url, '/', '')) AS folder, file_type,
              sum(status = 'pending') AS pending, sum(status = 'failed') AS retrying,
              min(CASE WHEN status = 'pending' THEN due_at END) AS oldest
         FROM file_checkpoints WHERE status IN ('pending', 'failed')
        GROUP BY folder, file_type ORDER BY count(*) DESC, folder, file_type LIMIT ?`,
    ),
    // fc_leases's literal condition.
    inFlight: p(
      `SELECT file_url, file_type, processed_by, attempts, started_at, due_at
         FROM file_checkpoints WHERE status = 'processing' ORDER BY started_at, file_url LIMIT ?`,
    ),
    // fa_failures read backwards (its condition repeated literally); a requeue row has no end.
    recentFailures: p(
      `SELECT file_url, version, attempt, worker_id, ended_at, outcome, error_message FROM file_attempts
        WHERE outcome NOT IN ('completed', 'released') AND ended_at IS NOT NULL
        ORDER BY ended_at DESC, id DESC LIMIT ?`,
    ),
  };
  // created_at has no index: one scan of the table counts the rows by status (counts()'s
  // query) and the rows discovered in every window at once.
  const scans = new Map<number, Database.Statement>();
  const countsAndDiscovered = (sinces: readonly string[]): { counts: Record<Status, number>; found: number[] } => {
    let st = scans.get(sinces.length);
    if (st === undefined) {
      const sums = sinces.map((_, i) => `, sum(created_at >= ?) AS w${i}`).join('');
      st = p(`SELECT status, count(*) AS n${sums} FROM file_checkpoints GROUP BY status`);
      scans.set(sinces.length, st);
    }
    const counts: Record<Status, number> = { pending: 0, processing: 0, completed: 0, failed: 0, dead: 0 };
    const found = sinces.map(() => 0);
    for (const row of st.all(...sinces) as Record<string, number | string | null>[]) {
      counts[row.status as Status] = Number(row.n);
      sinces.forEach((_, i) => (found[i]! += Number(row[`w${i}`] ?? 0)));
    }
    return { counts, found };
  };
  return (q: ActivityQuery): Activity =>
    db.transaction(() => {
      const sinces = q.windowsMs.map((w) => iso(q.now - w));
      const { counts, found } = countsAndDiscovered(sinces);
      return {
        stats: parts.stats(counts, q.now),
        workers: parts.workers(),
        windows: q.windowsMs.map((windowMs, i) => {
          const o = s.outcomesIn.get(sinces[i]) as { c: number | null; f: number | null };
          return { windowMs, discovered: found[i] ?? 0, completed: o.c ?? 0, failed: o.f ?? 0 };
        }),
        backlog: (s.backlog.all(q.limit) as Row[]).map(toBacklogGroup).sort(byBacklog),
        inFlight: (s.inFlight.all(q.limit) as Row[]).map(toInFlight),
        failures: (s.recentFailures.all(q.limit) as Row[]).map(toRecentFailure),
      };
    })();
}
