#!/bin/sh
# A command handler that loads a CSV file into a SQLite database exactly once, with the sqlite3
# shell: the rows and the run's idempotency key commit in one transaction, and a run whose key
# is already there writes nothing and prints the stats recorded the first time.
#
#   "handler": { "command": ["/opt/ckpt/sink-sqlite3.sh", "/var/lib/app/readings.db", "{path}"] }
#
# The CSV has a header line and the columns sensor,ts,value; the rows go into table readings
# (created here if missing; put your own table and columns in the two marked places).
# ckpt's table ckpt_applied is the one SqliteSink creates, so shell and module handlers can
# share a sink. Needs the sqlite3 shell 3.32 or later (.import --csv --skip).
set -eu

db=$1
file=$2
key=${CKPT_IDEMPOTENCY_KEY:?run by ckpt: CKPT_IDEMPOTENCY_KEY is not set}
# The key is 32 hex characters: checked, so that it can go into SQL as it is.
case $key in *[!0-9a-f]*|'') echo "unexpected idempotency key: $key" >&2; exit 2 ;; esac
case ${CKPT_VERSION:-} in ''|*[!0-9]*) echo "CKPT_VERSION is not a number" >&2; exit 2 ;; esac
case ${CKPT_ATTEMPT:-} in ''|*[!0-9]*) echo "CKPT_ATTEMPT is not a number" >&2; exit 2 ;; esac
# Any other text goes into SQL as a literal with its quotes doubled.
lit() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }

# A path inside a dot-command cannot be quoted safely: .import reads a link with a plain name.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$(realpath "$file")" "$tmp/in.csv"

sqlite3 -batch -bail "$db" >/dev/null <<SQL
.timeout 30000
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS ckpt_applied (
  idempotency_key TEXT PRIMARY KEY, file_url TEXT NOT NULL, version INTEGER NOT NULL,
  attempt INTEGER, worker_id TEXT, applied_at TEXT NOT NULL, stats TEXT);
-- (1) your table
CREATE TABLE IF NOT EXISTS readings (sensor TEXT NOT NULL, ts TEXT NOT NULL, value REAL);
SQL

applied() {
  sqlite3 -batch -bail "$db" ".timeout 30000" "SELECT stats FROM ckpt_applied WHERE idempotency_key = '$key'"
}
stats=$(applied)
if [ -n "$stats" ]; then
  echo "already applied: nothing written" >&2
  echo "$stats"
  exit 0
fi

# BEGIN IMMEDIATE takes the write lock first, so two runs of one key cannot interleave; if
# another run committed the key since the check above, the INSERT fails on the primary key,
# -bail ends the shell, and the transaction is rolled back with nothing written.
if sqlite3 -batch -bail "$db" >/dev/null <<SQL
.timeout 30000
BEGIN IMMEDIATE;
INSERT INTO ckpt_applied (idempotency_key, file_url, version, attempt, worker_id, applied_at)
  VALUES ('$key', $(lit "$CKPT_FILE"), $CKPT_VERSION, $CKPT_ATTEMPT, $(lit "${CKPT_WORKER_ID:-}"), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
-- (2) your columns
CREATE TEMP TABLE incoming (sensor TEXT, ts TEXT, value REAL);
.import --csv --skip 1 '$tmp/in.csv' incoming
INSERT INTO readings (sensor, ts, value) SELECT sensor, ts, value FROM incoming;
UPDATE ckpt_applied
   SET stats = json_object('total', (SELECT count(*) FROM incoming), 'filtered', 0, 'persisted', (SELECT count(*) FROM incoming))
 WHERE idempotency_key = '$key';
COMMIT;
SQL
then
  applied
  exit 0
fi
# Failed: either another run of this key won (then print its stats), or a real error (exit 1,
# ckpt retries; the shell printed the error on stderr).
stats=$(applied)
[ -n "$stats" ] || exit 1
echo "already applied by a concurrent run: nothing written" >&2
echo "$stats"
