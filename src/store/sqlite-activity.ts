/**
 * The SQLite side of `activity()` (what `ckpt top` shows), kept out of sqlite-store.ts: read-only
 * statements over the same tables, run in one read transaction so that the rates and the lists
 * agree with each other.
 */
import type { SqliteDatabase } from './open-database.js';
import { byBacklog, toBacklogGroup, toInFlight, toRecentFailure } from './activity.js';
import type { Row } from './record.js';
import { iso } from './time.js';
import type { Activity, ActivityQuery } from './types.js';

export function prepareActivity(db: SqliteDatabase) {
  const p = (sql: string) => db.prepare(sql);
  const s = {
    // created_at has no index: this scans the table, as counts() does.
    discoveredSince: p('SELECT count(*) AS n FROM file_checkpoints WHERE created_at >= ?'),
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
    // fa_ended read backwards; a requeue row has no end and is not an outcome.
    recentFailures: p(
      `SELECT file_url, version, attempt, worker_id, ended_at, outcome, error_message FROM file_attempts
        WHERE ended_at IS NOT NULL AND outcome NOT IN ('completed', 'released')
        ORDER BY ended_at DESC, id DESC LIMIT ?`,
    ),
  };
  return (q: ActivityQuery): Activity =>
    db.transaction(() => ({
      windows: q.windowsMs.map((windowMs) => {
        const since = iso(q.now - windowMs);
        const d = s.discoveredSince.get(since) as { n: number };
        const o = s.outcomesIn.get(since) as { c: number | null; f: number | null };
        return { windowMs, discovered: d.n, completed: o.c ?? 0, failed: o.f ?? 0 };
      }),
      backlog: (s.backlog.all(q.limit) as Row[]).map(toBacklogGroup).sort(byBacklog),
      inFlight: (s.inFlight.all(q.limit) as Row[]).map(toInFlight),
      failures: (s.recentFailures.all(q.limit) as Row[]).map(toRecentFailure),
    }))();
}
