/**
 * Every SQL statement of the PostgreSQL store, as named (prepared) statements. Each is the
 * set-based counterpart of a statement in ../sqlite-statements.ts: where SQLite loops over a batch
 * inside one transaction, PostgreSQL takes the batch as arrays (unnest) in ONE statement, so a
 * batch costs one round trip instead of one per file.
 *
 * Every write after a claim names the claim token and `status = 'processing'`: a worker whose
 * claim was taken over changes nothing. Times are ISO-8601 text cast to TIMESTAMPTZ; `now`
 * always comes from the caller, never from the server's clock, so tests can move time (and
 * across hosts, leases are measured with the claiming host's clock: docs/postgresql.md asks for NTP).
 */

import { REQUEUED } from '../types.js';

export interface Statement {
  name: string;
  text: string;
}

/**
 * The batched writes repeat `f.file_url = ANY ($urls)` beside the join on the unnested batch:
 * it gives the planner the primary key as an index condition whatever it guesses about the
 * batch, where a bare join was planned as a hash join over a scan of fc_leases.
 *
 * `s` is the quoted schema. Statement names are per connection, and every PostgresStore has a
 * pool of its own, so one store's names never meet another schema's text.
 */
// One entry per statement: a table, not logic, so it stays one function however long it grows.
export function statements(s: string) {
  const fc = `${s}.file_checkpoints`;
  const fa = `${s}.file_attempts`;
  const ft = `${s}.file_tombstones`;
  const wk = `${s}.ckpt_workers`;
  const st = (name: string, text: string): Statement => ({ name: `ckpt_${name}`, text });
  const attemptCols = 'file_url, version, attempt, worker_id, claim_token, started_at, ended_at, outcome, error_message, duration_ms, after_action';
  // Past any attempt row of the version, as in SQLite (NEXT_ATTEMPT in sqlite-statements.ts).
  const nextAttempt = `1 + GREATEST(f.attempts, COALESCE((SELECT max(a.attempt) FROM ${fa} AS a
                   WHERE a.file_url = f.file_url AND a.version = f.version), 0))`;
  return {
    // --- discover -------------------------------------------------------------------------
    /**
     * $1 urls. What is known about each path: its row, or else its tombstone. The tombstone is
     * looked up (one index probe) only for paths without a row: a join planned it as a hash
     * over a sequential scan of the whole tombstone table (EXPLAIN, generic plan).
     */
    known: st(
      'known',
      `SELECT u.file_url, f.status, f.fingerprint,
              CASE WHEN f.file_url IS NULL THEN (SELECT t.fingerprint FROM ${ft} AS t WHERE t.file_url = u.file_url) END AS tomb_fingerprint,
              CASE WHEN f.file_url IS NULL THEN (SELECT t.version FROM ${ft} AS t WHERE t.file_url = u.file_url) END AS tomb_version
         FROM unnest($1::text[]) AS u(file_url)
         LEFT JOIN ${fc} AS f ON f.file_url = u.file_url`,
    ),
    /** $1 now, $2 urls, $3 types, $4 mtimes, $5 fingerprints, $6 sizes, $7 versions. Sorted input: inserts lock keys in one order. */
    insert: st(
      'insert',
      `INSERT INTO ${fc} (file_url, file_type, file_timestamp, fingerprint, file_size, due_at, version, created_at, updated_at)
       SELECT u.file_url, u.file_type, u.ts, u.fp, u.size, $1::timestamptz, u.version, $1::timestamptz, $1::timestamptz
         FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bigint[], $7::int[])
              WITH ORDINALITY AS u(file_url, file_type, ts, fp, size, version, ord)
        ORDER BY u.ord
       ON CONFLICT (file_url) DO NOTHING
       RETURNING file_url`,
    ),
    deleteTombstones: st('deleteTombstones', `DELETE FROM ${ft} WHERE file_url = ANY($1::text[])`),
    /** $1 now, $2 urls, $3 types, $4 mtimes, $5 fingerprints, $6 sizes. */
    reversion: st(
      'reversion',
      `UPDATE ${fc} AS f
          SET status = 'pending', version = f.version + 1, attempts = 0, retry_count = 0,
              file_type = u.file_type, file_timestamp = u.ts, fingerprint = u.fp, file_size = u.size,
              due_at = $1::timestamptz, records_total = 0, records_filtered = 0, records_persisted = 0,
              processing_time_ms = 0, error_message = NULL, started_at = NULL, completed_at = NULL,
              claim_token = NULL, handler_pid = NULL, after_action = NULL, updated_at = $1::timestamptz
         FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bigint[]) AS u(file_url, file_type, ts, fp, size)
        WHERE f.file_url = ANY ($2::text[]) AND f.file_url = u.file_url AND f.status IN ('completed', 'dead')
          AND f.fingerprint <> u.fp
       RETURNING f.file_url`,
    ),
    /** $1 now, $2 urls, $3 mtimes, $4 fingerprints, $5 sizes. */
    refreshFingerprint: st(
      'refreshFingerprint',
      `UPDATE ${fc} AS f SET file_timestamp = u.ts, fingerprint = u.fp, file_size = u.size, updated_at = $1::timestamptz
         FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::bigint[]) AS u(file_url, ts, fp, size)
        WHERE f.file_url = ANY ($2::text[]) AND f.file_url = u.file_url AND f.status IN ('pending', 'failed')
          AND f.fingerprint <> u.fp`,
    ),

    // --- claim ----------------------------------------------------------------------------
    /**
     * $1 now, $2 limit. Inside the claim transaction. SKIP LOCKED: two hosts sweeping at once
     * each take different rows, so no expired claim is reported (or recorded) twice.
     */
    expiredLeases: st(
      'expiredLeases',
      `SELECT file_url, file_type, version, attempts, retry_count, claim_token, processed_by, handler_pid, started_at
         FROM ${fc} WHERE status = 'processing' AND due_at <= $1::timestamptz
        ORDER BY due_at LIMIT $2::int
          FOR UPDATE SKIP LOCKED`,
    ),
    /**
     * $1 now, $2 urls, $3 tokens, $4 new statuses, $5 retry counts, $6 due times, $7 errors,
     * $8 versions, $9 attempts, $10 worker ids, $11 started_at, $12 durations.
     */
    expire: st(
      'expire',
      `WITH x AS (
         SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::text[],
                              $8::int[], $9::int[], $10::text[], $11::timestamptz[], $12::bigint[])
                AS x(file_url, token, status, retry_count, due_at, error, version, attempt, worker_id, started_at, duration)
       ), upd AS (
         UPDATE ${fc} AS f
            SET status = x.status, retry_count = x.retry_count, due_at = x.due_at, error_message = x.error,
                completed_at = CASE WHEN x.status = 'dead' THEN $1::timestamptz END, handler_pid = NULL,
                updated_at = $1::timestamptz
           FROM x
          WHERE f.file_url = ANY ($2::text[]) AND f.file_url = x.file_url AND f.claim_token = x.token
            AND f.status = 'processing'
         RETURNING f.file_url
       )
       INSERT INTO ${fa} (${attemptCols})
       SELECT x.file_url, x.version, x.attempt, x.worker_id, x.token, x.started_at, $1::timestamptz, 'lease_expired', x.error, x.duration, NULL
         FROM x JOIN upd ON upd.file_url = x.file_url`,
    ),
    /**
     * $1 now, $2 limit, $3 worker, $4 lease expiry, $5 file types or NULL (any), $6 true: only
     * those types, false: all but those (ClaimOptions.fileTypes). The claim in one statement: lock up to $2
     * ready rows that nobody else has locked, oldest first, and hand them out. MATERIALIZED so
     * the locking sub-select runs exactly once. `= ANY (ARRAY(...))` rather than a join: the
     * generic plan of a prepared statement guesses LIMIT $2 at 10% of the table and joined by
     * a hash over a sequential scan of the whole table (seen in EXPLAIN at 20k rows); the
     * array makes it an index lookup whatever the guess.
     *
     * Folded in, a cheap probe on fc_leases: when some lease has run out, this claims nothing and
     * returns one row with `expired` true instead, and the store runs sweep + claim in one
     * transaction (as SQLite always does: expired claims are dealt with before anything is
     * handed out). The common case thus costs one round trip.
     */
    claim: st(
      'claim',
      `WITH probe AS (
         SELECT EXISTS (SELECT 1 FROM ${fc} WHERE status = 'processing' AND due_at <= $1::timestamptz) AS expired
       ), picked AS MATERIALIZED (
         SELECT file_url, due_at FROM ${fc}
          WHERE status IN ('pending', 'failed') AND due_at <= $1::timestamptz AND NOT (SELECT expired FROM probe)
            AND ($5::text[] IS NULL OR (file_type = ANY ($5::text[])) = $6::boolean)
          ORDER BY due_at LIMIT $2::int
            FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE ${fc} AS f
            SET status = 'processing', claim_token = gen_random_uuid()::text, processed_by = $3::text,
                started_at = $1::timestamptz, due_at = $4::timestamptz, attempts = ${nextAttempt},
                handler_pid = NULL, updated_at = $1::timestamptz
          WHERE f.file_url = ANY (ARRAY(SELECT file_url FROM picked))
         RETURNING f.file_url, f.file_type, f.version, f.attempts, f.retry_count, f.claim_token, f.fingerprint
       )
       SELECT c.*, p.due_at AS ready_at, false AS expired FROM claimed c JOIN picked p USING (file_url)
       UNION ALL
       SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true FROM probe WHERE expired`,
    ),
    /** $1..$6 as for `claim`: `claim` inside the sweep's transaction. */
    claimAfterSweep: st(
      'claimAfterSweep',
      `WITH picked AS MATERIALIZED (
         SELECT file_url, due_at FROM ${fc}
          WHERE status IN ('pending', 'failed') AND due_at <= $1::timestamptz
            AND ($5::text[] IS NULL OR (file_type = ANY ($5::text[])) = $6::boolean)
          ORDER BY due_at LIMIT $2::int
            FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE ${fc} AS f
            SET status = 'processing', claim_token = gen_random_uuid()::text, processed_by = $3::text,
                started_at = $1::timestamptz, due_at = $4::timestamptz, attempts = ${nextAttempt},
                handler_pid = NULL, updated_at = $1::timestamptz
          WHERE f.file_url = ANY (ARRAY(SELECT file_url FROM picked))
         RETURNING f.file_url, f.file_type, f.version, f.attempts, f.retry_count, f.claim_token, f.fingerprint
       )
       SELECT c.*, p.due_at AS ready_at FROM claimed c JOIN picked p USING (file_url)`,
    ),
    /** $1 now, $2 file, $3 worker, $4 lease expiry, $5 true to skip the probe (inside the sweep's transaction). */
    claimOne: st(
      'claimOne',
      `WITH probe AS (
         SELECT NOT $5::boolean AND EXISTS (SELECT 1 FROM ${fc} WHERE status = 'processing' AND due_at <= $1::timestamptz) AS expired
       ), claimed AS (
         UPDATE ${fc} AS f
            SET status = 'processing', claim_token = gen_random_uuid()::text, processed_by = $3::text,
                started_at = $1::timestamptz, due_at = $4::timestamptz, attempts = ${nextAttempt},
                handler_pid = NULL, updated_at = $1::timestamptz
          WHERE f.file_url = $2::text AND f.status IN ('pending', 'failed') AND f.due_at <= $1::timestamptz
            AND NOT (SELECT expired FROM probe)
         RETURNING f.file_url, f.file_type, f.version, f.attempts, f.retry_count, f.claim_token, f.fingerprint
       )
       SELECT *, false AS expired FROM claimed
       UNION ALL
       SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, true FROM probe WHERE expired`,
    ),

    // --- token-guarded writes -------------------------------------------------------------
    /** $1 lease expiry, $2 now, $3 urls, $4 tokens. Returns the rows still held. */
    extend: st(
      'extend',
      `UPDATE ${fc} AS f SET due_at = $1::timestamptz, updated_at = $2::timestamptz
         FROM unnest($3::text[], $4::text[]) AS r(file_url, token)
        WHERE f.file_url = ANY ($3::text[]) AND f.file_url = r.file_url AND f.claim_token = r.token
          AND f.status = 'processing'
       RETURNING f.file_url, f.claim_token`,
    ),
    /** $1 pid, $2 url, $3 token. */
    setPid: st(
      'setPid',
      `UPDATE ${fc} SET handler_pid = $1::int WHERE file_url = $2::text AND claim_token = $3::text AND status = 'processing'`,
    ),
    /**
     * $1 urls, $2 tokens, $3 totals, $4 filtered, $5 persisted, $6 durations, $7 times, $8 after-actions,
     * $9 fingerprints the handler read (NULL: keep the row's). Returns the ordinal (1-based) of
     * every item that was completed.
     */
    complete: st(
      'complete',
      `WITH i AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                              $7::timestamptz[], $8::text[], $9::text[])
                WITH ORDINALITY AS i(file_url, token, total, filtered, persisted, duration, at, after_action, fp, ord)
       ), done AS (
         UPDATE ${fc} AS f
            SET status = 'completed', records_total = i.total, records_filtered = i.filtered,
                records_persisted = i.persisted, processing_time_ms = i.duration, completed_at = i.at,
                after_action = i.after_action, fingerprint = coalesce(i.fp, f.fingerprint), error_message = NULL,
                due_at = NULL, handler_pid = NULL, updated_at = i.at
           FROM i
          WHERE f.file_url = ANY ($1::text[]) AND f.file_url = i.file_url AND f.claim_token = i.token
            AND f.status = 'processing'
         RETURNING i.ord, f.file_url, f.version, f.attempts, f.processed_by, f.started_at, i.token, i.at,
                   i.duration, i.after_action
       ), logged AS (
         INSERT INTO ${fa} (${attemptCols})
         SELECT file_url, version, attempts, processed_by, token, started_at, at, 'completed', NULL, duration, after_action
           FROM done
       )
       SELECT ord FROM done`,
    ),
    /** $1 url, $2 token. */
    heldRow: st(
      'heldRow',
      `SELECT version, attempts, retry_count, processed_by, started_at FROM ${fc}
        WHERE file_url = $1::text AND claim_token = $2::text AND status = 'processing'`,
    ),
    /**
     * $1 url, $2 token, $3 status, $4 retry count, $5 due, $6 error, $7 duration, $8 completed_at,
     * $9 now, $10 outcome, $11 fingerprint read, $12 after-action planned (dead). Returns a row when the token still held the file.
     */
    fail: st(
      'fail',
      `WITH upd AS (
         UPDATE ${fc}
            SET status = $3::text, retry_count = $4::int, due_at = $5::timestamptz, error_message = $6::text,
                processing_time_ms = $7::bigint, completed_at = $8::timestamptz, handler_pid = NULL,
                updated_at = $9::timestamptz, fingerprint = coalesce($11::text, fingerprint), after_action = $12::text
          WHERE file_url = $1::text AND claim_token = $2::text AND status = 'processing'
         RETURNING file_url, version, attempts, processed_by, started_at
       ), logged AS (
         INSERT INTO ${fa} (${attemptCols})
         SELECT file_url, version, attempts, processed_by, $2::text, started_at, $9::timestamptz, $10::text, $6::text, $7::bigint, $12::text
           FROM upd
       )
       SELECT file_url FROM upd`,
    ),
    /** $1 now, $2 urls, $3 tokens. Returns the ordinal of every item released. */
    release: st(
      'release',
      `WITH r AS (
         SELECT * FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS r(file_url, token, ord)
       ), done AS (
         UPDATE ${fc} AS f SET status = 'pending', due_at = $1::timestamptz, handler_pid = NULL, updated_at = $1::timestamptz
           FROM r
          WHERE f.file_url = ANY ($2::text[]) AND f.file_url = r.file_url AND f.claim_token = r.token
            AND f.status = 'processing'
         RETURNING r.ord, f.file_url, f.version, f.attempts, f.processed_by, f.started_at, r.token
       ), logged AS (
         INSERT INTO ${fa} (${attemptCols})
         SELECT file_url, version, attempts, processed_by, token, started_at, $1::timestamptz, 'released', NULL,
                greatest(0, floor(extract(epoch FROM ($1::timestamptz - started_at)) * 1000))::bigint, NULL
           FROM done
       )
       SELECT ord FROM done`,
    ),

    // --- operator actions -----------------------------------------------------------------
    /**
     * $1 now, $2 named files, $3 all dead, $4 file type or NULL, $5 who asked, $6/$7 files put
     * back at their path and where from. The named files (failed or dead), and with $3 every
     * dead file (of one type): one statement, each row counted once, each requeue written to
     * the history (no claim token, no end: see REQUEUED in ../types.ts).
     */
    requeue: st(
      'requeue',
      `WITH back AS (
         UPDATE ${fc}
            SET status = 'pending', retry_count = 0, due_at = $1::timestamptz, error_message = NULL,
                completed_at = NULL, after_action = NULL, updated_at = $1::timestamptz
          WHERE (status IN ('failed', 'dead') AND file_url = ANY($2::text[]))
             OR ($3::boolean AND status = 'dead' AND ($4::text IS NULL OR file_type = $4::text))
         RETURNING file_url, version, attempts)
       INSERT INTO ${fa} (${attemptCols})
       SELECT b.file_url, b.version, b.attempts, $5::text, NULL, $1::timestamptz, NULL, '${REQUEUED}', NULL, NULL, m.note
         FROM back AS b LEFT JOIN unnest($6::text[], $7::text[]) AS m(file_url, note) ON m.file_url = b.file_url`,
    ),
    tombstone: st('tombstone', `SELECT * FROM ${ft} WHERE file_url = $1::text`),
    /** $1 url: the tombstone taken away (revive), or nothing. */
    liftTombstone: st('liftTombstone', `DELETE FROM ${ft} WHERE file_url = $1::text RETURNING *`),
    /** $1 now, $2 url, $3 type, $4 mtime, $5 fingerprint, $6 size, $7 version. */
    insertOne: st(
      'insertOne',
      `INSERT INTO ${fc} (file_url, file_type, file_timestamp, fingerprint, file_size, due_at, version, created_at, updated_at)
       VALUES ($2::text, $3::text, $4::timestamptz, $5::text, $6::bigint, $1::timestamptz, $7::int, $1::timestamptz, $1::timestamptz)
       ON CONFLICT (file_url) DO NOTHING`,
    ),
    /** $1 url, $2 version, $3 who asked, $4 now, $5 note. */
    requeueEvent: st(
      'requeueEvent',
      `INSERT INTO ${fa} (${attemptCols})
       VALUES ($1::text, $2::int, 0, $3::text, NULL, $4::timestamptz, NULL, '${REQUEUED}', NULL, NULL, $5::text)`,
    ),
    /** $1 what the after-action did, $2 url, $3 the claim token of the attempt. */
    recordAfterAction: st('recordAfterAction', `UPDATE ${fa} SET after_action = $1::text WHERE file_url = $2::text AND claim_token = $3::text`),
    /**
     * $1 statuses, $2 cut-off, $3 now, $4 at most this many rows (NULL: all). The rows, their
     * attempts and a tombstone per row, in one statement (run under the purge lock, see
     * PostgresStore.purge).
     */
    purge: st(
      'purge',
      `WITH gone AS (
         DELETE FROM ${fc} WHERE status = ANY($1::text[]) AND updated_at < $2::timestamptz AND file_url IN (
           SELECT file_url FROM ${fc} WHERE status IN ('completed', 'dead') AND status = ANY($1::text[]) AND updated_at < $2::timestamptz
           ORDER BY updated_at LIMIT $4::int
         )
         RETURNING file_url, fingerprint, version, status
       ), tomb AS (
         INSERT INTO ${ft} (file_url, fingerprint, version, status, purged_at)
         SELECT file_url, fingerprint, version, status, $3::timestamptz FROM gone
         ON CONFLICT (file_url) DO UPDATE
           SET fingerprint = excluded.fingerprint, version = excluded.version, status = excluded.status,
               purged_at = excluded.purged_at
       ), att AS (
         DELETE FROM ${fa} WHERE file_url IN (SELECT file_url FROM gone)
       )
       SELECT count(*)::int AS n FROM gone`,
    ),

    /** $1 cut-off, $2 at most this many (NULL: all): tombstones of purges before the cut-off. */
    expireTombstones: st(
      'expireTombstones',
      `DELETE FROM ${ft} WHERE file_url IN (SELECT file_url FROM ${ft} WHERE purged_at < $1::timestamptz ORDER BY purged_at LIMIT $2::int)`,
    ),

    // --- reads ----------------------------------------------------------------------------
    get: st('get', `SELECT * FROM ${fc} WHERE file_url = $1::text`),
    attempts: st('attempts', `SELECT * FROM ${fa} WHERE file_url = $1::text ORDER BY version, attempt, id`),
    counts: st('counts', `SELECT status, count(*)::int AS n FROM ${fc} GROUP BY status`),
    /** Same literal condition as fc_ready, so the index answers it. */
    oldestPending: st(
      'oldestPending',
      `SELECT due_at FROM ${fc} WHERE status IN ('pending', 'failed') AND status = 'pending' ORDER BY due_at LIMIT 1`,
    ),
    /** $1 a minute ago, $2 an hour ago. */
    outcomesSince: st(
      'outcomesSince',
      `SELECT count(*) FILTER (WHERE outcome = 'completed' AND ended_at >= $1::timestamptz)::int AS cm,
              count(*) FILTER (WHERE outcome NOT IN ('completed', 'released') AND ended_at >= $1::timestamptz)::int AS fm,
              count(*) FILTER (WHERE outcome = 'completed')::int AS ch,
              count(*) FILTER (WHERE outcome NOT IN ('completed', 'released'))::int AS fh
         FROM ${fa} WHERE ended_at >= $2::timestamptz`,
    ),

    // --- activity (ckpt top) ---------------------------------------------------------------
    /**
     * $1 the windows' starts. Files discovered since each, numbered i from 1 as given: one read
     * of the rows since the earliest start for every window (created_at has no index). A window
     * with no file has no row.
     */
    discoveredSince: st(
      'discoveredSince',
      `SELECT u.i::int AS i, count(*) FILTER (WHERE f.created_at >= u.w)::int AS n
         FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(w, i)
        CROSS JOIN (SELECT created_at FROM ${fc} WHERE created_at >= (SELECT min(x) FROM unnest($1::timestamptz[]) AS x)) AS f
        GROUP BY u.i`,
    ),
    /** $1 since. */
    outcomesIn: st(
      'outcomesIn',
      `SELECT count(*) FILTER (WHERE outcome = 'completed')::int AS c,
              count(*) FILTER (WHERE outcome NOT IN ('completed', 'released'))::int AS f
         FROM ${fa} WHERE ended_at >= $1::timestamptz`,
    ),
    /** $1 limit. The folder: the path up to its last '/' (with it, as SQLite's rtrim() gives). */
    backlog: st(
      'backlog',
      `SELECT regexp_replace(file_url, '[^/]*$', '') AS folder, file_type,
              count(*) FILTER (WHERE status = 'pending')::int AS pending,
              count(*) FILTER (WHERE status = 'failed')::int AS retrying,
              min(due_at) FILTER (WHERE status = 'pending') AS oldest
         FROM ${fc} WHERE status IN ('pending', 'failed')
        GROUP BY 1, 2
        ORDER BY count(*) DESC, regexp_replace(file_url, '[^/]*$', '') COLLATE "C", file_type COLLATE "C" LIMIT $1::int`,
    ),
    /** $1 limit. */
    inFlight: st(
      'inFlight',
      `SELECT file_url, file_type, processed_by, attempts, started_at, due_at
         FROM ${fc} WHERE status = 'processing' ORDER BY started_at, file_url LIMIT $1::int`,
    ),
    /** $1 limit. fa_failures (its condition repeated); a requeue row has no end. */
    recentFailures: st(
      'recentFailures',
      `SELECT file_url, version, attempt, worker_id, ended_at, outcome, error_message FROM ${fa}
        WHERE outcome NOT IN ('completed', 'released') AND ended_at IS NOT NULL
        ORDER BY ended_at DESC, id DESC LIMIT $1::int`,
    ),

    // --- workers --------------------------------------------------------------------------
    /** $1 id, $2 host, $3 pid, $4 now, $5 mode, $6 mode since, $7 reason. */
    touchWorker: st(
      'touchWorker',
      `INSERT INTO ${wk} (worker_id, host, pid, started_at, heartbeat_at, mode, mode_since, mode_reason)
       VALUES ($1::text, $2::text, $3::int, $4::timestamptz, $4::timestamptz, $5::text, $6::timestamptz, $7::text)
       ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, mode = excluded.mode,
         mode_since = excluded.mode_since, mode_reason = excluded.mode_reason`,
    ),
    removeWorker: st('removeWorker', `DELETE FROM ${wk} WHERE worker_id = $1::text`),
    workers: st('workers', `SELECT * FROM ${wk} ORDER BY worker_id`),

    // --- locks ----------------------------------------------------------------------------
    /**
     * Discovery takes the purge lock shared, purge exclusive: without it a purge committing
     * between discovery's tombstone read and its insert would let a purged file (still lying in
     * the folder) come back as a new version-1 row and run again. Plain text, sent with BEGIN in
     * one round trip; `schema` has passed SCHEMA_NAME (letters, digits, _), so it is safe inline.
     */
    purgeLock: (mode: 'shared' | 'exclusive', schema: string) =>
      `SELECT pg_advisory_xact_lock${mode === 'shared' ? '_shared' : ''}(hashtext('ckpt'), hashtext('purge:${schema}'))`,
  };
}

export type Statements = ReturnType<typeof statements>;
