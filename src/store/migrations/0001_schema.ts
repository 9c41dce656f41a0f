/**
 * Migration 1: the ledger.
 *
 * `file_checkpoints` keeps the seed's table name and column names (file_url ... created_at);
 * the columns after `created_at` are ckpt's own. Times are ISO-8601 UTC text (see ../time.ts).
 */
export const sql = /* sql */ `
CREATE TABLE file_checkpoints (
  file_url           TEXT PRIMARY KEY,
  file_type          TEXT NOT NULL,
  file_timestamp     TEXT NOT NULL,
  status             TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'dead')),
  records_total      INTEGER NOT NULL DEFAULT 0,
  records_filtered   INTEGER NOT NULL DEFAULT 0,
  records_persisted  INTEGER NOT NULL DEFAULT 0,
  processing_time_ms INTEGER NOT NULL DEFAULT 0,
  error_message      TEXT,
  retry_count        INTEGER NOT NULL DEFAULT 0,
  processed_by       TEXT,
  started_at         TEXT,
  completed_at       TEXT,
  created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  -- ckpt's additions --------------------------------------------------------------------------
  version            INTEGER NOT NULL DEFAULT 1,   -- bumped when a handled file comes back changed
  attempts           INTEGER NOT NULL DEFAULT 0,   -- runs started for this version; never reused
  fingerprint        TEXT NOT NULL,                -- size:mtimeMs:dev:ino of the version on record
  file_size          INTEGER NOT NULL DEFAULT 0,
  claim_token        TEXT,                         -- fencing token of the current/last claim
  due_at             TEXT,                         -- pending: ready since; failed: next attempt;
                                                   -- processing: lease expiry; else NULL
  handler_pid        INTEGER,                      -- process group of a running command handler
  after_action       TEXT,                         -- what was done with the file afterwards
  updated_at         TEXT NOT NULL
);

-- Claims read this index only: partial, so 1M completed rows do not slow it (measured 0.93x of
-- the 10k-row speed, against 0.41x for a plain status index), keyed on due_at so the claim is a
-- range scan in first-in-first-out order. The claim's WHERE must repeat the literal condition.
CREATE INDEX fc_ready ON file_checkpoints (due_at) WHERE status IN ('pending', 'failed');
-- Expired leases, found without touching the ready rows.
CREATE INDEX fc_leases ON file_checkpoints (due_at) WHERE status = 'processing';

CREATE TABLE file_attempts (
  id            INTEGER PRIMARY KEY,
  file_url      TEXT NOT NULL,
  version       INTEGER NOT NULL,
  attempt       INTEGER NOT NULL,
  worker_id     TEXT NOT NULL,
  claim_token   TEXT,
  started_at    TEXT NOT NULL,
  ended_at      TEXT,
  outcome       TEXT NOT NULL,   -- completed, failed, dead, released, lease_expired, vanished, ...
  error_message TEXT,
  duration_ms   INTEGER,
  after_action  TEXT
);
CREATE INDEX fa_file ON file_attempts (file_url, version, attempt);
CREATE INDEX fa_ended ON file_attempts (ended_at);

-- What purge leaves behind, so a purged file still lying in the folder is not handled again.
CREATE TABLE file_tombstones (
  file_url    TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  version     INTEGER NOT NULL,
  status      TEXT NOT NULL,
  purged_at   TEXT NOT NULL
) WITHOUT ROWID;

-- Live ckpt processes and their mode, for \`ckpt status\`.
CREATE TABLE ckpt_workers (
  worker_id    TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  started_at   TEXT NOT NULL,
  heartbeat_at TEXT NOT NULL,
  mode         TEXT NOT NULL DEFAULT 'normal',
  mode_since   TEXT,
  mode_reason  TEXT
) WITHOUT ROWID;
`;
