/**
 * PostgreSQL migration 1: the ledger, column for column the same as the SQLite schema
 * (../../migrations/0001_schema.ts) so that the same queries, the same CLI output and the same
 * operator habits work on both. Differences, all deliberate:
 * - times are TIMESTAMPTZ (the store turns them into ISO-8601 UTC text at the interface);
 * - counters, sizes and durations are BIGINT (SQLite's INTEGER is 64-bit as well);
 * - file_url uses COLLATE "C": byte order, like SQLite's default, so `list` pages in the same
 *   order on both stores (and comparisons skip the locale's rules);
 * - file_attempts.id is an identity column instead of SQLite's rowid alias.
 *
 * `s` is the quoted schema name.
 */
// One migration's SQL text: its length is the schema's, not logic to split.
export function sql(s: string): string {
  return /* sql */ `
CREATE TABLE ${s}.file_checkpoints (
  file_url           TEXT COLLATE "C" PRIMARY KEY,
  file_type          TEXT NOT NULL,
  file_timestamp     TIMESTAMPTZ NOT NULL,
  status             TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'dead')),
  records_total      BIGINT NOT NULL DEFAULT 0,
  records_filtered   BIGINT NOT NULL DEFAULT 0,
  records_persisted  BIGINT NOT NULL DEFAULT 0,
  processing_time_ms BIGINT NOT NULL DEFAULT 0,
  error_message      TEXT,
  retry_count        INTEGER NOT NULL DEFAULT 0,
  processed_by       TEXT,
  started_at         TIMESTAMPTZ,
  completed_at       TIMESTAMPTZ,
  created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- ckpt's additions --------------------------------------------------------------------------
  version            INTEGER NOT NULL DEFAULT 1,
  attempts           INTEGER NOT NULL DEFAULT 0,
  fingerprint        TEXT NOT NULL,
  file_size          BIGINT NOT NULL DEFAULT 0,
  claim_token        TEXT,
  due_at             TIMESTAMPTZ,
  handler_pid        INTEGER,
  after_action       TEXT,
  updated_at         TIMESTAMPTZ NOT NULL
);

-- Claims read this index only; partial, so completed rows never slow it down, and keyed on
-- due_at so a claim is a range scan in first-in-first-out order. As in SQLite, the claim's
-- WHERE repeats the literal condition so the planner can prove the index applies.
CREATE INDEX fc_ready ON ${s}.file_checkpoints (due_at) WHERE status IN ('pending', 'failed');
-- Expired leases, found without touching the ready rows.
CREATE INDEX fc_leases ON ${s}.file_checkpoints (due_at) WHERE status = 'processing';

CREATE TABLE ${s}.file_attempts (
  id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  file_url      TEXT COLLATE "C" NOT NULL,
  version       INTEGER NOT NULL,
  attempt       INTEGER NOT NULL,
  worker_id     TEXT NOT NULL,
  claim_token   TEXT,
  started_at    TIMESTAMPTZ NOT NULL,
  ended_at      TIMESTAMPTZ,
  outcome       TEXT NOT NULL,
  error_message TEXT,
  duration_ms   BIGINT,
  after_action  TEXT
);
CREATE INDEX fa_file ON ${s}.file_attempts (file_url, version, attempt);
CREATE INDEX fa_ended ON ${s}.file_attempts (ended_at);

CREATE TABLE ${s}.file_tombstones (
  file_url    TEXT COLLATE "C" PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  version     INTEGER NOT NULL,
  status      TEXT NOT NULL,
  purged_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE ${s}.ckpt_workers (
  worker_id    TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  started_at   TIMESTAMPTZ NOT NULL,
  heartbeat_at TIMESTAMPTZ NOT NULL,
  mode         TEXT NOT NULL DEFAULT 'normal',
  mode_since   TIMESTAMPTZ,
  mode_reason  TEXT
);
`;
}
