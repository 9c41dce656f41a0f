/**
 * Migration 2: read-only views for people at the sqlite3 shell (docs/sqlite3.md).
 *
 * Nothing in ckpt reads these views; they exist so that an operator can answer "where do things
 * stand, what failed and why, how fast is it going" with one short SELECT. Rules they follow:
 *
 * - Times are shown as `YYYY-MM-DD HH:MM:SS` (UTC, what `datetime()` prints) next to an age
 *   such as `4m 05s`; the stored ISO-8601 text stays in the tables for exact work.
 * - Every function used here exists in the Debian sqlite3 shell 3.40 (docs/stack-behaviour.md): a view the
 *   older shell cannot parse would make the whole schema unreadable there, not just the view.
 *   test/cli/inspect-sqlite3.test.ts runs the queries of docs/sqlite3.md through that shell.
 * - Filters repeat the partial indexes' literal conditions (`status IN ('pending', 'failed')`,
 *   `status = 'processing'`) so the planner can use them (docs/stack-behaviour.md: a partial index is used only
 *   when the WHERE repeats its condition literally).
 */

/** Seconds between an ISO-8601 time and now (positive in the past). */
function secondsSince(expr: string): string {
  return `CAST(round((julianday('now') - julianday(${expr})) * 86400) AS INTEGER)`;
}

/** `42s`, `4m 05s`, `3h 07m`, `2d 04h` for an ISO-8601 time in the past; NULL for NULL. */
function ageOf(expr: string): string {
  const s = secondsSince(expr);
  return `(CASE WHEN ${expr} IS NULL THEN NULL
      WHEN ${s} < 60 THEN printf('%ds', ${s})
      WHEN ${s} < 3600 THEN printf('%dm %02ds', ${s} / 60, ${s} % 60)
      WHEN ${s} < 86400 THEN printf('%dh %02dm', ${s} / 3600, (${s} / 60) % 60)
      ELSE printf('%dd %02dh', ${s} / 86400, (${s} / 3600) % 24) END)`;
}

/**
 * An error message on one line, at most 160 characters: handler errors carry the last few KB
 * of stderr, which would otherwise break every row of the shell's table in two.
 */
function oneLine(expr: string): string {
  // "exit code 1; stderr:\n<tail>" reads as "exit code 1; stderr: <tail>"; other breaks as " | ".
  const joined = `replace(replace(trim(${expr}, char(9, 10, 13, 32)), char(13), ''), 'stderr:' || char(10), 'stderr: ')`;
  return `substr(replace(${joined}, char(10), ' | '), 1, 160)`;
}

/** Now and an hour ago as ISO-8601 text, comparable with the stored times (and their indexes). */
const NOW = `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`;
const NOW_MINUS_1H = `strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')`;

export const sql = /* sql */ `
-- Counts by status, all five always listed, with the age of the row longest in that status.
CREATE VIEW v_status AS
WITH s (status, ord) AS (
  VALUES ('pending', 1), ('processing', 2), ('completed', 3), ('failed', 4), ('dead', 5)
),
c AS (
  SELECT status, count(*) AS n, min(updated_at) AS oldest FROM file_checkpoints GROUP BY status
)
SELECT s.status,
       coalesce(c.n, 0) AS files,
       datetime(c.oldest) AS oldest_since,
       ${ageOf('c.oldest')} AS oldest_age
  FROM s LEFT JOIN c ON c.status = s.status
 ORDER BY s.ord;

-- Failed (will be retried) and dead (will not) files with their last error, newest first.
CREATE VIEW v_failures AS
SELECT status,
       retry_count AS failures,
       attempts,
       version,
       datetime(updated_at) AS failed_at,
       ${ageOf('updated_at')} AS failed_ago,
       CASE WHEN status = 'failed' THEN datetime(due_at) END AS next_try,
       file_type,
       file_url,
       ${oneLine('error_message')} AS error,
       error_message AS error_full
  FROM file_checkpoints
 WHERE status IN ('failed', 'dead')
 ORDER BY updated_at DESC;

-- Every attempt with its duration, plus the ones running now (outcome 'running').
CREATE VIEW v_attempts AS
SELECT file_url,
       version,
       attempt,
       worker_id,
       datetime(started_at) AS started,
       datetime(ended_at) AS ended,
       outcome,
       round(coalesce(duration_ms, (julianday(ended_at) - julianday(started_at)) * 86400000) / 1000.0, 3) AS duration_s,
       after_action,
       ${oneLine('error_message')} AS error,
       error_message AS error_full
  FROM file_attempts
UNION ALL
SELECT file_url,
       version,
       attempts,
       processed_by,
       datetime(started_at),
       NULL,
       'running',
       round((julianday('now') - julianday(started_at)) * 86400, 3),
       NULL,
       NULL,
       NULL
  FROM file_checkpoints
 WHERE status = 'processing';

-- Outcomes of the last hour, newest first (fa_ended answers the time range).
CREATE VIEW v_recent AS
SELECT datetime(ended_at) AS ended,
       ${ageOf('ended_at')} AS ago,
       outcome,
       round(duration_ms / 1000.0, 3) AS duration_s,
       worker_id,
       attempt,
       file_url,
       ${oneLine('error_message')} AS error
  FROM file_attempts
 WHERE ended_at >= ${NOW_MINUS_1H}
 ORDER BY ended_at DESC;

-- The last hour minute by minute: how many finished, how many failed, how long they took.
CREATE VIEW v_throughput AS
SELECT replace(substr(ended_at, 1, 16), 'T', ' ') AS minute,
       sum(outcome = 'completed') AS completed,
       sum(outcome NOT IN ('completed', 'released')) AS failed,
       sum(outcome = 'released') AS released,
       round(avg(CASE WHEN outcome = 'completed' THEN duration_ms END) / 1000.0, 3) AS avg_s,
       round(max(CASE WHEN outcome = 'completed' THEN duration_ms END) / 1000.0, 3) AS max_s
  FROM file_attempts
 WHERE ended_at >= ${NOW_MINUS_1H}
 GROUP BY minute
 ORDER BY minute;

-- The queue: files waiting to run (pending) or to be retried (failed), in claim order.
CREATE VIEW v_queue AS
SELECT status,
       datetime(due_at) AS due,
       CASE WHEN due_at <= ${NOW} THEN ${ageOf('due_at')} END AS waiting,
       retry_count AS failures,
       file_type,
       file_url
  FROM file_checkpoints
 WHERE status IN ('pending', 'failed')
 ORDER BY due_at;

-- ckpt processes that registered themselves, their mode, and how fresh their heartbeat is.
CREATE VIEW v_workers AS
SELECT worker_id,
       host,
       pid,
       mode,
       datetime(mode_since) AS mode_since,
       mode_reason,
       datetime(started_at) AS started,
       datetime(heartbeat_at) AS heartbeat,
       ${ageOf('heartbeat_at')} AS heartbeat_ago,
       (SELECT count(*) FROM file_checkpoints f
         WHERE f.status = 'processing' AND f.processed_by = w.worker_id) AS running
  FROM ckpt_workers w
 ORDER BY worker_id;
`;
