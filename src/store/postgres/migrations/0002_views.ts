/**
 * PostgreSQL migration 2: the read-only views of the SQLite ledger (../../migrations/0002_views.ts),
 * for people at psql (docs/postgresql.md, "Looking inside"). Same
 * names, same columns, same rows, so that the sqlite3 questions of docs/sqlite3.md work here too with
 * only the schema in front (`SELECT * FROM ckpt.v_status`).
 *
 * Nothing in ckpt reads them. Differences from SQLite, all deliberate:
 * - The formatting lives in two small functions, `ckpt_time(t)` (`YYYY-MM-DD HH:MM:SS`, UTC
 *   whatever the session's TimeZone) and `ckpt_age(t)` (`4m 05s`), instead of an expression
 *   repeated in every view: PostgreSQL has SQL functions, and operators can use them too.
 * - `now()` is the server's clock (the start of the psql statement's transaction). ckpt itself
 *   never uses it (leases are compared with the claiming host's clock), so an age shown here
 *   can be off by the skew between the server and the hosts.
 * - Filters repeat the partial indexes' literal conditions, as in SQLite, so that the planner
 *   can use fc_ready and fc_leases.
 *
 * `s` is the quoted schema name.
 */
// One migration's SQL text: its length is the schema's, not logic to split.
export function sql(s: string): string {
  return /* sql */ `
CREATE FUNCTION ${s}.ckpt_time(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') $$;

CREATE FUNCTION ${s}.ckpt_age(t timestamptz) RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$
    SELECT CASE WHEN t IS NULL THEN NULL
                WHEN x < 60 THEN x || 's'
                WHEN x < 3600 THEN (x / 60) || 'm ' || lpad((x % 60)::text, 2, '0') || 's'
                WHEN x < 86400 THEN (x / 3600) || 'h ' || lpad(((x / 60) % 60)::text, 2, '0') || 'm'
                ELSE (x / 86400) || 'd ' || lpad(((x / 3600) % 24)::text, 2, '0') || 'h' END
      FROM (SELECT round(extract(epoch FROM now() - t))::bigint AS x) AS a
  $$;

-- An error message on one line, at most 160 characters (handler errors carry KBs of stderr).
CREATE FUNCTION ${s}.ckpt_one_line(e text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$
    SELECT left(replace(replace(replace(btrim(e, E'\\t\\n\\r '), E'\\r', ''), E'stderr:\\n', 'stderr: '), E'\\n', ' | '), 160)
  $$;

-- Counts by status, all five always listed, with the age of the row longest in that status.
CREATE VIEW ${s}.v_status AS
WITH st (status, ord) AS (
  VALUES ('pending', 1), ('processing', 2), ('completed', 3), ('failed', 4), ('dead', 5)
),
c AS (
  SELECT status, count(*) AS n, min(updated_at) AS oldest FROM ${s}.file_checkpoints GROUP BY status
)
SELECT st.status,
       coalesce(c.n, 0) AS files,
       ${s}.ckpt_time(c.oldest) AS oldest_since,
       ${s}.ckpt_age(c.oldest) AS oldest_age
  FROM st LEFT JOIN c ON c.status = st.status
 ORDER BY st.ord;

-- Failed (will be retried) and dead (will not) files with their last error, newest first.
CREATE VIEW ${s}.v_failures AS
SELECT status,
       retry_count AS failures,
       attempts,
       version,
       ${s}.ckpt_time(updated_at) AS failed_at,
       ${s}.ckpt_age(updated_at) AS failed_ago,
       CASE WHEN status = 'failed' THEN ${s}.ckpt_time(due_at) END AS next_try,
       file_type,
       file_url,
       ${s}.ckpt_one_line(error_message) AS error,
       error_message AS error_full
  FROM ${s}.file_checkpoints
 WHERE status IN ('failed', 'dead')
 ORDER BY updated_at DESC;

-- Every attempt with its duration, plus the ones running now (outcome 'running').
CREATE VIEW ${s}.v_attempts AS
SELECT file_url,
       version,
       attempt,
       worker_id,
       ${s}.ckpt_time(started_at) AS started,
       ${s}.ckpt_time(ended_at) AS ended,
       outcome,
       round(coalesce(duration_ms, extract(epoch FROM ended_at - started_at) * 1000)::numeric / 1000, 3) AS duration_s,
       after_action,
       ${s}.ckpt_one_line(error_message) AS error,
       error_message AS error_full
  FROM ${s}.file_attempts
UNION ALL
SELECT file_url,
       version,
       attempts,
       processed_by,
       ${s}.ckpt_time(started_at),
       NULL,
       'running',
       round(extract(epoch FROM now() - started_at)::numeric, 3),
       NULL,
       NULL,
       NULL
  FROM ${s}.file_checkpoints
 WHERE status = 'processing';

-- Outcomes of the last hour, newest first (fa_ended answers the time range).
CREATE VIEW ${s}.v_recent AS
SELECT ${s}.ckpt_time(ended_at) AS ended,
       ${s}.ckpt_age(ended_at) AS ago,
       outcome,
       round(duration_ms::numeric / 1000, 3) AS duration_s,
       worker_id,
       attempt,
       file_url,
       ${s}.ckpt_one_line(error_message) AS error
  FROM ${s}.file_attempts
 WHERE ended_at >= now() - interval '1 hour'
 ORDER BY ended_at DESC;

-- The last hour minute by minute: how many finished, how many failed, how long they took.
CREATE VIEW ${s}.v_throughput AS
SELECT to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS minute,
       count(*) FILTER (WHERE outcome = 'completed') AS completed,
       count(*) FILTER (WHERE outcome NOT IN ('completed', 'released')) AS failed,
       count(*) FILTER (WHERE outcome = 'released') AS released,
       round(avg(duration_ms) FILTER (WHERE outcome = 'completed') / 1000, 3) AS avg_s,
       round(max(duration_ms) FILTER (WHERE outcome = 'completed')::numeric / 1000, 3) AS max_s
  FROM ${s}.file_attempts
 WHERE ended_at >= now() - interval '1 hour'
 GROUP BY 1
 ORDER BY 1;

-- The queue: files waiting to run (pending) or to be retried (failed), in claim order.
CREATE VIEW ${s}.v_queue AS
SELECT status,
       ${s}.ckpt_time(due_at) AS due,
       CASE WHEN due_at <= now() THEN ${s}.ckpt_age(due_at) END AS waiting,
       retry_count AS failures,
       file_type,
       file_url
  FROM ${s}.file_checkpoints
 WHERE status IN ('pending', 'failed')
 ORDER BY due_at;

-- ckpt processes that registered themselves, their mode, and how fresh their heartbeat is.
CREATE VIEW ${s}.v_workers AS
SELECT worker_id,
       host,
       pid,
       mode,
       ${s}.ckpt_time(mode_since) AS mode_since,
       mode_reason,
       ${s}.ckpt_time(started_at) AS started,
       ${s}.ckpt_time(heartbeat_at) AS heartbeat,
       ${s}.ckpt_age(heartbeat_at) AS heartbeat_ago,
       (SELECT count(*) FROM ${s}.file_checkpoints f
         WHERE f.status = 'processing' AND f.processed_by = w.worker_id) AS running
  FROM ${s}.ckpt_workers w
 ORDER BY worker_id;
`;
}
