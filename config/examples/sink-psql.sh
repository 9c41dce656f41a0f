#!/bin/sh
# A command handler that loads a CSV file into PostgreSQL exactly once, with psql: the rows and
# the run's idempotency key commit in one transaction, and a run whose key is already there
# writes nothing and prints the stats recorded the first time.
#
#   "handler": { "command": ["/opt/ckpt/sink-psql.sh", "{path}"] }
#
# The connection comes from libpq's environment (PGHOST, PGPORT, PGDATABASE, PGUSER, and
# ~/.pgpass or PGPASSWORD), so no password is on a command line. The CSV has a header line and
# the columns sensor,ts,value; the rows go into table readings (created here if missing; put
# your own table and columns in the two marked places). ckpt's table ckpt_applied is the one
# PostgresSink creates, so psql and module handlers can share a sink.
set -eu

file=$1
: "${CKPT_IDEMPOTENCY_KEY:?run by ckpt: CKPT_IDEMPOTENCY_KEY is not set}"

# Set-up, in its own transaction: the advisory lock is the one PostgresSink takes for its
# CREATE TABLE, since two CREATE TABLE IF NOT EXISTS at the same moment can fail.
psql -X -q -v ON_ERROR_STOP=1 -1 >/dev/null <<'SQL'
SELECT pg_advisory_xact_lock(hashtext('ckpt'), hashtext('sink:public'));
CREATE TABLE IF NOT EXISTS ckpt_applied (
  idempotency_key TEXT PRIMARY KEY, file_url TEXT NOT NULL, version BIGINT NOT NULL,
  attempt INTEGER, worker_id TEXT, applied_at TIMESTAMPTZ NOT NULL, stats JSONB);
-- (1) your table
CREATE TABLE IF NOT EXISTS readings (sensor TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL, value DOUBLE PRECISION);
SQL

# The key goes in first, ON CONFLICT DO NOTHING: a second run of the key waits for the first
# one's transaction and then finds the key; \if skips the writes. psql quotes :'var' values,
# whatever the file name holds. The CSV is psql's standard input (pstdin).
psql -X -q -At -v ON_ERROR_STOP=1 \
  -v key="$CKPT_IDEMPOTENCY_KEY" -v file="$CKPT_FILE" -v version="$CKPT_VERSION" \
  -v attempt="$CKPT_ATTEMPT" -v worker="${CKPT_WORKER_ID:-}" \
  -f /dev/fd/3 3<<'SQL' <"$file"
BEGIN;
SET LOCAL lock_timeout = '30s';
WITH ins AS (
  INSERT INTO ckpt_applied (idempotency_key, file_url, version, attempt, worker_id, applied_at)
  VALUES (:'key', :'file', :'version', :'attempt', :'worker', now())
  ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1)
SELECT count(*) = 1 AS fresh FROM ins \gset
\if :fresh
  -- (2) your columns
  CREATE TEMP TABLE incoming (sensor TEXT, ts TIMESTAMPTZ, value DOUBLE PRECISION) ON COMMIT DROP;
  \copy incoming FROM pstdin WITH (FORMAT csv, HEADER true)
  INSERT INTO readings (sensor, ts, value) SELECT sensor, ts, value FROM incoming;
  UPDATE ckpt_applied
     SET stats = json_build_object('total', (SELECT count(*) FROM incoming), 'filtered', 0, 'persisted', (SELECT count(*) FROM incoming))
   WHERE idempotency_key = :'key';
\else
  \warn 'already applied: nothing written'
\endif
COMMIT;
SELECT stats::text FROM ckpt_applied WHERE idempotency_key = :'key';
SQL
