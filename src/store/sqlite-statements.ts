import type Database from 'better-sqlite3';

/*
 * Every statement the SQLite store runs more than once, prepared once per connection. The
 * transitions they execute are rules/transitions.ts; sqlite-store.ts decides when each runs.
 */

/** In an UPDATE of file_checkpoints: the highest attempt number in the history of the row's version, or 0. */
export const MAX_ATTEMPT_ROW = `coalesce((SELECT max(a.attempt) FROM file_attempts a
  WHERE a.file_url = file_checkpoints.file_url AND a.version = file_checkpoints.version), 0)`;

/**
 * The attempt number a claim takes: one past the row's counter, and past any attempt row of the
 * version. A journal replayed from degraded mode can put a renumbered attempt into the history of
 * a row another worker holds, whose counter must stay that worker's number until its claim ends
 * (without this, the next claim took that number again). One seek in fa_file per claimed row.
 */
const NEXT_ATTEMPT = `1 + max(attempts, ${MAX_ATTEMPT_ROW})`;

/**
 * Back to pending with a fresh budget (parameters: due, now, then `where`'s). The plan of the
 * last after-action goes too: the file is back at its path, nothing is planned.
 */
function requeueSql(where: string): string {
  return `UPDATE file_checkpoints SET status = 'pending', retry_count = 0, due_at = ?, error_message = NULL,
            completed_at = NULL, after_action = NULL, updated_at = ?
          WHERE ${where}
          RETURNING file_url, version, attempts`;
}

/** A prepared statement, under a name the emitted declarations can use. */
export interface Statement extends Database.Statement<unknown[], unknown> {}

/** What every claim writes (parameters: token prefix, worker, now, lease end, now). */
const CLAIM_SET = `SET status = 'processing', claim_token = ? || rowid, processed_by = ?, started_at = ?,
             due_at = ?, attempts = ${NEXT_ATTEMPT}, handler_pid = NULL, updated_at = ?`;
/** What every claim hands back: the fields of a Claim. */
const CLAIM_RETURNING = 'RETURNING file_url, file_type, version, attempts, retry_count, claim_token, fingerprint';

// One entry per statement: a table, not logic, so it stays one function however long it grows.
export function prepare(db: Database.Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  return {
    getTombstone: p('SELECT fingerprint, version FROM file_tombstones WHERE file_url = ?'),
    deleteTombstone: p('DELETE FROM file_tombstones WHERE file_url = ?'),
    insert: p(
      `INSERT INTO file_checkpoints (file_url, file_type, file_timestamp, fingerprint, file_size, due_at, version, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_url) DO NOTHING`,
    ),
    getForDiscover: p('SELECT status, fingerprint, after_action, processed_by, updated_at FROM file_checkpoints WHERE file_url = ?'),
    takeAfterAction: p(
      `UPDATE file_checkpoints SET after_action = ?, updated_at = ?
       WHERE file_url = ? AND status = ? AND fingerprint = ? AND after_action = ?`,
    ),
    reversion: p(
      `UPDATE file_checkpoints SET status = 'pending', version = version + 1, attempts = 0, retry_count = 0,
         file_type = ?, file_timestamp = ?, fingerprint = ?, file_size = ?, due_at = ?,
         records_total = 0, records_filtered = 0, records_persisted = 0, processing_time_ms = 0,
         error_message = NULL, started_at = NULL, completed_at = NULL, claim_token = NULL,
         handler_pid = NULL, after_action = NULL, updated_at = ?
       WHERE file_url = ? AND status IN ('completed', 'dead')`,
    ),
    refreshFingerprint: p(
      `UPDATE file_checkpoints SET file_timestamp = ?, fingerprint = ?, file_size = ?, updated_at = ?
       WHERE file_url = ? AND status IN ('pending', 'failed')`,
    ),
    // The inner WHERE repeats fc_ready's condition literally, or SQLite scans the table
    // (measured: 56 ms per claim at 1M rows instead of 34 us). NEXT_ATTEMPT: see its comment.
    claim: p(
      `UPDATE file_checkpoints ${CLAIM_SET}
       WHERE rowid IN (SELECT rowid FROM file_checkpoints
                       WHERE status IN ('pending', 'failed') AND due_at <= ?
                       ORDER BY due_at LIMIT ?)
       ${CLAIM_RETURNING}`,
    ),
    // A route's claim (ClaimOptions.fileTypes): the same, with the type test as a filter on the
    // fc_ready walk. Its cost grows with the ready rows of other types ahead in due order.
    claimTypes: p(
      `UPDATE file_checkpoints ${CLAIM_SET}
       WHERE rowid IN (SELECT rowid FROM file_checkpoints
                       WHERE status IN ('pending', 'failed') AND due_at <= ?
                         AND (file_type IN (SELECT value FROM json_each(?))) = ?
                       ORDER BY due_at LIMIT ?)
       ${CLAIM_RETURNING}`,
    ),
    claimOne: p(
      `UPDATE file_checkpoints ${CLAIM_SET}
       WHERE file_url = ? AND status IN ('pending', 'failed') AND due_at <= ?
       ${CLAIM_RETURNING}`,
    ),
    expiredLeases: p(
      `SELECT file_url, file_type, version, attempts, retry_count, claim_token, processed_by, handler_pid, started_at
         FROM file_checkpoints WHERE status = 'processing' AND due_at <= ? ORDER BY due_at LIMIT ?`,
    ),
    expire: p(
      `UPDATE file_checkpoints SET status = ?, retry_count = ?, due_at = ?, error_message = ?,
         completed_at = ?, after_action = ?, handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    extend: p(
      `UPDATE file_checkpoints SET due_at = ?, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    setPid: p(`UPDATE file_checkpoints SET handler_pid = ? WHERE file_url = ? AND claim_token = ? AND status = 'processing'`),
    complete: p(
      `UPDATE file_checkpoints
         SET status = 'completed', records_total = ?, records_filtered = ?, records_persisted = ?,
             processing_time_ms = ?, completed_at = ?, after_action = ?, fingerprint = coalesce(?, fingerprint),
             error_message = NULL, due_at = NULL, handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'
       RETURNING version, attempts, processed_by, started_at`,
    ),
    heldRow: p(
      `SELECT version, attempts, retry_count, processed_by, started_at FROM file_checkpoints
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    fail: p(
      `UPDATE file_checkpoints SET status = ?, retry_count = ?, due_at = ?, error_message = ?,
         processing_time_ms = ?, completed_at = ?, after_action = ?, fingerprint = coalesce(?, fingerprint),
         handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
    ),
    release: p(
      `UPDATE file_checkpoints SET status = 'pending', due_at = ?, handler_pid = NULL, updated_at = ?
       WHERE file_url = ? AND claim_token = ? AND status = 'processing'
       RETURNING version, attempts, processed_by, started_at`,
    ),
    requeueOne: p(requeueSql(`file_url = ? AND status IN ('failed', 'dead')`)),
    requeueDead: p(requeueSql(`status = 'dead'`)),
    requeueDeadType: p(requeueSql(`status = 'dead' AND file_type = ?`)),
    // A requeue in the history: no claim token, no end (see REQUEUED).
    insertEvent: p(
      `INSERT INTO file_attempts (file_url, version, attempt, worker_id, claim_token, started_at, ended_at,
         outcome, error_message, duration_ms, after_action)
       VALUES (?, ?, ?, ?, NULL, ?, NULL, ?, NULL, NULL, ?)`,
    ),
    getTombstoneRow: p('SELECT * FROM file_tombstones WHERE file_url = ?'),
    recordAfterAction: p('UPDATE file_attempts SET after_action = ? WHERE file_url = ? AND claim_token = ?'),
    insertAttempt: p(
      `INSERT INTO file_attempts (file_url, version, attempt, worker_id, claim_token, started_at, ended_at,
         outcome, error_message, duration_ms, after_action)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    get: p('SELECT * FROM file_checkpoints WHERE file_url = ?'),
    attempts: p('SELECT * FROM file_attempts WHERE file_url = ? ORDER BY version, attempt, id'),
    counts: p('SELECT status, count(*) AS n FROM file_checkpoints GROUP BY status'),
    // Same literal condition as fc_ready, so the index answers it.
    oldestPending: p(
      `SELECT due_at FROM file_checkpoints WHERE status IN ('pending', 'failed') AND status = 'pending'
       ORDER BY due_at LIMIT 1`,
    ),
    outcomesSince: p(
      `SELECT sum(outcome = 'completed' AND ended_at >= ?) AS cm,
              sum(outcome NOT IN ('completed', 'released') AND ended_at >= ?) AS fm,
              sum(outcome = 'completed') AS ch,
              sum(outcome NOT IN ('completed', 'released')) AS fh
         FROM file_attempts WHERE ended_at >= ?`,
    ),
    touchWorker: p(
      `INSERT INTO ckpt_workers (worker_id, host, pid, started_at, heartbeat_at, mode, mode_since, mode_reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, mode = excluded.mode,
         mode_since = excluded.mode_since, mode_reason = excluded.mode_reason`,
    ),
    removeWorker: p('DELETE FROM ckpt_workers WHERE worker_id = ?'),
    workers: p('SELECT * FROM ckpt_workers ORDER BY worker_id'),
  };
}
