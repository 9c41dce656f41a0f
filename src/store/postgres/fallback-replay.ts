import Database from 'better-sqlite3';
import type pg from 'pg';
import type { JournalEntry } from '../fallback/journal.js';
import type { ReplayOutcome } from '../fallback/primary.js';
import { type CarriedClaim, Replayer, applyAll, emptyStats } from '../fallback/replay.js';
import { migrate } from '../open-database.js';

type PgRow = Record<string, unknown>;

/**
 * Replaying fallback journals into PostgreSQL, with the very rules SQLite uses (replay.ts),
 * inside the caller's transaction:
 *
 * 1. Lock the rows of every file the journals name (`SELECT ... FOR UPDATE`, in file order so
 *    two replaying hosts cannot deadlock), and read their attempts and tombstones.
 * 2. Copy them into a scratch in-memory SQLite database with ckpt's own schema, and run the
 *    Replayer there (synchronous, as on a SQLite file).
 * 3. Write back what changed: each changed or new file row (upsert), each new attempt row.
 *
 * One set of decision rules for both engines, instead of a second, asynchronous copy of
 * replay.ts that would drift. The rows are locked from the read to the commit, so another host
 * cannot claim or finish one of these files in between; it waits for the commit (a replay of a
 * few hundred entries is a few round trips). A file with no row at all is not locked: if
 * another host inserts it in between, the upsert keeps the journal's state and the other
 * host's claim, if any, meets it as any claim meets a completed row.
 *
 * The scratch database is not "the database" of open-database.ts: it lives for one replay, in
 * memory, and holds a copy of a few rows.
 */
export async function replayOnPostgres(
  client: pg.ClientBase,
  qs: string,
  entries: readonly JournalEntry[],
  carried: readonly CarriedClaim[],
  now: number,
  onEntryError: (err: unknown, e: JournalEntry) => void,
): Promise<ReplayOutcome> {
  const lostTokens = new Set<string>();
  const urls = [...new Set([...entries.map((e) => e.fileUrl), ...carried.map((c) => c.fileUrl)])].sort();
  if (urls.length === 0) return { stats: emptyStats(), lostTokens };
  const rows = (await client.query<PgRow>(`SELECT * FROM ${qs}.file_checkpoints WHERE file_url = ANY($1::text[]) ORDER BY file_url FOR UPDATE`, [urls])).rows;
  const attempts = (await client.query<PgRow>(`SELECT * FROM ${qs}.file_attempts WHERE file_url = ANY($1::text[]) ORDER BY id`, [urls])).rows;
  const tombs = (await client.query<PgRow>(`SELECT * FROM ${qs}.file_tombstones WHERE file_url = ANY($1::text[])`, [urls])).rows;

  const scratch = new Database(':memory:');
  let changed: PgRow[];
  let added: PgRow[];
  let stats;
  try {
    migrate(scratch);
    // Attempt rows may outlive their file row (purge keeps the history): no foreign keys here.
    scratch.pragma('foreign_keys = OFF');
    copyIn(scratch, 'file_checkpoints', rows);
    copyIn(scratch, 'file_attempts', attempts);
    copyIn(scratch, 'file_tombstones', tombs);
    const maxId = attempts.reduce((m, a) => Math.max(m, Number(a.id)), 0);
    const replayer = new Replayer(scratch, now);
    for (const t of scratch.transaction(() => applyAll(replayer, entries, carried, onEntryError))()) lostTokens.add(t);
    stats = replayer.stats;
    const before = new Map(rows.map((r) => [String(r.file_url), same(r)]));
    changed = (scratch.prepare('SELECT * FROM file_checkpoints ORDER BY file_url').all() as PgRow[]).filter((r) => before.get(String(r.file_url)) !== same(r));
    added = scratch.prepare('SELECT * FROM file_attempts WHERE id > ? ORDER BY id').all(maxId) as PgRow[];
  } finally {
    scratch.close();
  }

  for (const r of changed) {
    const cols = Object.keys(r);
    const set = cols.filter((c) => c !== 'file_url').map((c) => `${c} = EXCLUDED.${c}`);
    await client.query(
      `INSERT INTO ${qs}.file_checkpoints (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
       ON CONFLICT (file_url) DO UPDATE SET ${set.join(', ')}`,
      cols.map((c) => r[c]),
    );
  }
  for (const a of added) {
    const cols = Object.keys(a).filter((c) => c !== 'id');
    await client.query(
      `INSERT INTO ${qs}.file_attempts (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
      cols.map((c) => a[c]),
    );
  }
  return { stats, lostTokens };
}

function copyIn(db: Database.Database, table: string, rows: readonly PgRow[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const st = db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
  for (const r of rows) st.run(cols.map((c) => r[c] ?? null));
}

/** A row's values for comparison (PostgreSQL gives times as ISO text and BIGINT as numbers: see pool.ts). */
function same(r: PgRow): string {
  return JSON.stringify(Object.keys(r).sort().map((k) => [k, r[k] ?? null]));
}
