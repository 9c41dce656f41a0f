import fs from 'node:fs';
import path from 'node:path';
import { MIGRATIONS } from '../migrations/index.js';
import { type SqliteDatabase, openDatabase } from '../open-database.js';
import { failureAfterAction, failureCompletedAt, statusAfterAttempt } from '../rules/transitions.js';
import { STATUSES } from '../types.js';
import { syncDir } from './journal.js';
import { type ScannedRecord, type SqlValue, hasValidHeader, pageSizeOf, readIfExists, scanRecords } from './page-scan.js';

/**
 * Salvage of a corrupt ckpt database.
 *
 * 1. Copy the database and its -wal into a private work folder (SQLite must never open the
 *    original: opening and closing a WAL database checkpoints into it and deletes the -wal).
 * 2. If the 100-byte header is damaged, rewrite it in the copy from what ckpt knows: it created
 *    the file (page size 4096 unless the pages say otherwise, UTF-8, WAL, schema format 4,
 *    user_version = the latest migration).
 * 3. Read every row SQLite can still reach, row by row in rowid order, stepping over rowid
 *    ranges whose pages fail (doubling, then bisecting to the first readable rowid).
 * 4. Decode every leaf page of the copy and of its -wal directly (page-scan.ts) and add rows
 *    that step 3 could not reach, newest `updated_at` first.
 * 5. Write all of it into a fresh database (migrations through openDatabase), then move the
 *    originals aside byte for byte under `<db>.corrupt-<time>` (rename: same bytes, same inode,
 *    never rewritten) with their -wal and -shm, and rename the fresh file into place.
 *
 * The caller holds the salvage lock and has closed its own connection, or will (SQLite does
 * not checkpoint or delete the -wal of a database file that was renamed away: the pager checks
 * SQLITE_FCNTL_HAS_MOVED before it does).
 */

/** Base columns of migration 1, in table order: what a record on a page maps onto. */
const CHECKPOINT_COLS = [
  'file_url', 'file_type', 'file_timestamp', 'status', 'records_total', 'records_filtered', 'records_persisted',
  'processing_time_ms', 'error_message', 'retry_count', 'processed_by', 'started_at', 'completed_at', 'created_at',
  'version', 'attempts', 'fingerprint', 'file_size', 'claim_token', 'due_at', 'handler_pid', 'after_action', 'updated_at',
] as const;
const ATTEMPT_COLS = [
  'id', 'file_url', 'version', 'attempt', 'worker_id', 'claim_token', 'started_at', 'ended_at', 'outcome',
  'error_message', 'duration_ms', 'after_action',
] as const;
const TOMBSTONE_COLS = ['file_url', 'fingerprint', 'version', 'status', 'purged_at'] as const;

type Row = Record<string, SqlValue>;

export interface SalvagedRows {
  checkpoints: Row[];
  attempts: Row[];
  tombstones: Row[];
  headerRepaired: boolean;
  /** Why SQLite could not read the copy at all, if it could not. */
  sqlError: string | null;
  fromSql: { checkpoints: number; attempts: number; tombstones: number };
  fromPages: { checkpoints: number; attempts: number; tombstones: number };
  /** Rowid ranges SQLite could not read (stepped over). */
  skippedRanges: number;
}

export interface SalvageReport {
  /** `<db>.corrupt-<time>`: the original database, moved aside; -wal/-shm beside it when they existed. */
  corruptPath: string;
  moved: string[];
  checkpoints: number;
  completed: number;
  attempts: number;
  tombstones: number;
  headerRepaired: boolean;
  sqlError: string | null;
  fromSql: number;
  fromPages: number;
  /** Rows the file had lost, taken from the last snapshot (older, but better than nothing). */
  fromSnapshot: number;
  /** Rows older than their own attempt history, brought up to its last outcome (rollForward). */
  rolledForward: number;
  ms: number;
}

/** `ckpt.db.corrupt-2026-11-28T04-10-00Z` (and -2, -3 ... when that name is taken). */
export function corruptName(dbPath: string, now: number): string {
  const stamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
  let name = `${dbPath}.corrupt-${stamp}`;
  for (let i = 2; fs.existsSync(name); i++) name = `${dbPath}.corrupt-${stamp}-${i}`;
  return name;
}

/**
 * The whole salvage (steps 1-5 above). `workRoot` is a folder on the same file system as the
 * database (the fallback folder beside it), so the final renames are atomic.
 */
export function salvageDatabase(dbPath: string, opts: { now: number; workRoot: string; fileMode?: number; snapshot?: string }): SalvageReport {
  const t0 = Date.now();
  const work = path.join(opts.workRoot, `salvage-${process.pid}-${opts.now}`);
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true, mode: 0o700 });
  try {
    const src = path.join(work, 'src.db');
    copyIfExists(dbPath, src);
    copyIfExists(`${dbPath}-wal`, `${src}-wal`);
    if (!fs.existsSync(src)) fs.writeFileSync(src, '');
    const rows = readSalvageable(src);
    let fromSnapshot = 0;
    if (opts.snapshot && fs.existsSync(opts.snapshot)) {
      const snap = path.join(work, 'snapshot.db');
      fs.copyFileSync(opts.snapshot, snap);
      fromSnapshot = mergeSnapshot(rows, snap);
    }

    const rolledForward = rollForward(rows);
    const fresh = path.join(work, 'fresh.db');
    const counts = buildFreshDatabase(fresh, rows, opts.fileMode);

    const corruptPath = corruptName(dbPath, opts.now);
    const moved = moveAside(dbPath, corruptPath);
    fs.renameSync(fresh, dbPath);
    syncDir(path.dirname(dbPath));
    return {
      corruptPath,
      moved,
      ...counts,
      headerRepaired: rows.headerRepaired,
      sqlError: rows.sqlError,
      fromSql: rows.fromSql.checkpoints,
      fromPages: rows.fromPages.checkpoints,
      fromSnapshot,
      rolledForward,
      ms: Date.now() - t0,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Rename the database and its -wal/-shm to `corruptPath` (+ -wal/-shm). Returns the new names. */
export function moveAside(dbPath: string, corruptPath: string): string[] {
  const moved: string[] = [];
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      fs.renameSync(`${dbPath}${suffix}`, `${corruptPath}${suffix}`);
      moved.push(`${corruptPath}${suffix}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  syncDir(path.dirname(dbPath));
  return moved;
}

function copyIfExists(from: string, to: string): void {
  try {
    fs.copyFileSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Everything that can be read from a database copy (which this may modify: header repair,
 * WAL recovery). Never call it on the original file.
 */
export function readSalvageable(copy: string): SalvagedRows {
  const out: SalvagedRows = {
    checkpoints: [],
    attempts: [],
    tombstones: [],
    headerRepaired: false,
    sqlError: null,
    fromSql: { checkpoints: 0, attempts: 0, tombstones: 0 },
    fromPages: { checkpoints: 0, attempts: 0, tombstones: 0 },
    skippedRanges: 0,
  };
  const image = fs.readFileSync(copy);
  const pageSize = pageSizeOf(image);
  if (image.length >= 100 && !headerLooksRight(image)) {
    const fixed = Buffer.from(image);
    knownHeader(pageSize).copy(fixed, 0);
    fs.writeFileSync(copy, fixed);
    out.headerRepaired = true;
  }

  const viaSql = readViaSql(copy, out);
  // Step 4: straight from the pages (after the header repair, of the same copy and its -wal).
  const wanted = (n: number) => n >= CHECKPOINT_COLS.length || n === ATTEMPT_COLS.length || n === TOMBSTONE_COLS.length;
  const scanned = scanRecords(fs.readFileSync(copy), readIfExists(`${copy}-wal`), pageSize, wanted);
  addFromPages(viaSql, classify(scanned), out);
  out.fromSql = {
    checkpoints: viaSql.checkpoints.size - out.fromPages.checkpoints,
    attempts: viaSql.attempts.size - out.fromPages.attempts,
    tombstones: viaSql.tombstones.size - out.fromPages.tombstones,
  };
  // A tombstone older than the row for the same file is stale (the file came back after a purge).
  for (const [url, t] of viaSql.tombstones) {
    const row = viaSql.checkpoints.get(url);
    if (row && String(row.created_at) > String(t.purged_at)) viaSql.tombstones.delete(url);
  }
  out.checkpoints = [...viaSql.checkpoints.values()];
  out.attempts = [...viaSql.attempts.values()];
  out.tombstones = [...viaSql.tombstones.values()];
  return out;
}

/** Salvaged rows by key: file_url, or the attempt's id. */
interface RowsByKey {
  checkpoints: Map<string, Row>;
  attempts: Map<number, Row>;
  tombstones: Map<string, Row>;
}

/** Step 3: every row SQLite can still read from the copy (rowid ranges it cannot read are skipped). */
function readViaSql(copy: string, out: SalvagedRows): RowsByKey {
  const viaSql: RowsByKey = { checkpoints: new Map(), attempts: new Map(), tombstones: new Map() };
  let db: SqliteDatabase | undefined;
  try {
    db = openDatabase(copy, { readonly: true, allowNetworkFs: true, busyTimeoutMs: 0 });
    const cp = readByRowid(db, 'file_checkpoints');
    out.skippedRanges += cp.skipped;
    for (const r of cp.rows) viaSql.checkpoints.set(String(r.file_url), stripRowid(r));
    const at = readByRowid(db, 'file_attempts');
    out.skippedRanges += at.skipped;
    for (const r of at.rows) viaSql.attempts.set(Number(r.id), stripRowid(r));
    try {
      for (const r of db.prepare('SELECT * FROM file_tombstones').all() as Row[]) viaSql.tombstones.set(String(r.file_url), r);
    } catch {
      // a bad page in the tombstones: the page scan below picks up what it can
    }
  } catch (err) {
    out.sqlError = (err as Error).message;
  } finally {
    try {
      db?.close();
    } catch {
      // closing a broken copy
    }
  }
  return viaSql;
}

/** Rows the page scan found that SQLite could not read join them (what SQLite read wins). */
function addFromPages(viaSql: RowsByKey, pages: RowsByKey, out: SalvagedRows): void {
  for (const [url, r] of pages.checkpoints) {
    if (!viaSql.checkpoints.has(url)) {
      viaSql.checkpoints.set(url, r);
      out.fromPages.checkpoints++;
    }
  }
  for (const [id, r] of pages.attempts) {
    if (!viaSql.attempts.has(id)) {
      viaSql.attempts.set(id, r);
      out.fromPages.attempts++;
    }
  }
  for (const [url, r] of pages.tombstones) {
    if (!viaSql.tombstones.has(url)) {
      viaSql.tombstones.set(url, r);
      out.fromPages.tombstones++;
    }
  }
}

/**
 * Add rows from a snapshot (a copy; opened through SQLite) for files, attempts and tombstones
 * that the corrupt file did not yield. Returns how many file rows came from it.
 */
export function mergeSnapshot(rows: SalvagedRows, snapshotCopy: string): number {
  let db: SqliteDatabase | undefined;
  try {
    db = openDatabase(snapshotCopy, { readonly: true, allowNetworkFs: true, busyTimeoutMs: 0 });
    const have = new Set(rows.checkpoints.map((r) => String(r.file_url)));
    const haveTomb = new Set(rows.tombstones.map((r) => String(r.file_url)));
    const haveAttempt = new Set(rows.attempts.map((r) => Number(r.id)));
    let n = 0;
    for (const r of db.prepare('SELECT * FROM file_checkpoints').iterate() as Iterable<Row>) {
      if (have.has(String(r.file_url)) || haveTomb.has(String(r.file_url))) continue;
      rows.checkpoints.push(r);
      n++;
    }
    for (const r of db.prepare('SELECT * FROM file_attempts').iterate() as Iterable<Row>) {
      if (!haveAttempt.has(Number(r.id))) rows.attempts.push(r);
    }
    for (const r of db.prepare('SELECT * FROM file_tombstones').iterate() as Iterable<Row>) {
      if (!haveTomb.has(String(r.file_url)) && !have.has(String(r.file_url))) rows.tombstones.push(r);
    }
    return n;
  } catch {
    // an unreadable snapshot adds nothing
    return 0;
  } finally {
    try {
      db?.close();
    } catch {
      // ignore
    }
  }
}

function headerLooksRight(image: Buffer): boolean {
  if (!hasValidHeader(image)) return false;
  const ps = image.readUInt16BE(16);
  return (ps === 1 || (ps >= 512 && (ps & (ps - 1)) === 0)) && image[21] === 64 && image[22] === 32 && image[23] === 32;
}

/**
 * The 100-byte header ckpt's own files have. The change counter and "version valid for" differ
 * on purpose, so SQLite computes the page count from the file size instead of trusting ours; the
 * free-page list is given as empty (its pages become unreachable, which loses no rows).
 */
export function knownHeader(pageSize: number): Buffer {
  const h = Buffer.alloc(100);
  h.write('SQLite format 3\0', 0, 'latin1');
  h.writeUInt16BE(pageSize === 65536 ? 1 : pageSize, 16);
  h[18] = 2; // file format write version: WAL
  h[19] = 2; // read version: WAL
  h[20] = 0; // reserved bytes per page
  h[21] = 64;
  h[22] = 32;
  h[23] = 32;
  h.writeUInt32BE(1, 24); // file change counter
  h.writeUInt32BE(0, 28); // page count: computed from the file size (see above)
  h.writeUInt32BE(0, 32); // first freelist trunk page
  h.writeUInt32BE(0, 36); // freelist pages
  h.writeUInt32BE(1, 40); // schema cookie
  h.writeUInt32BE(4, 44); // schema format
  h.writeUInt32BE(0, 48);
  h.writeUInt32BE(0, 52); // no auto-vacuum
  h.writeUInt32BE(1, 56); // UTF-8
  h.writeUInt32BE(MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0, 60); // user_version
  h.writeUInt32BE(0, 64);
  h.writeUInt32BE(0, 68); // application id
  h.writeUInt32BE(0, 92); // version-valid-for != change counter: see above
  h.writeUInt32BE(3_053_002, 96);
  return h;
}

const ROWID_MIN = Number.MIN_SAFE_INTEGER;
const ROWID_MAX = Number.MAX_SAFE_INTEGER;

/**
 * Every row of a rowid table that SQLite can reach, in rowid order. A batch that fails is read
 * again one row at a time; a row that fails is stepped over by doubling the gap until a seek
 * succeeds, then bisecting back to the first rowid that reads.
 */
function readByRowid(db: SqliteDatabase, table: string): { rows: Row[]; skipped: number } {
  const batch = db.prepare(`SELECT rowid AS _rowid_, * FROM ${table} WHERE rowid > ? ORDER BY rowid LIMIT 128`);
  const one = db.prepare(`SELECT rowid AS _rowid_, * FROM ${table} WHERE rowid > ? ORDER BY rowid LIMIT 1`);
  const rows: Row[] = [];
  let skipped = 0;
  let last = ROWID_MIN;
  const tryOne = (after: number): Row | undefined | 'error' => {
    try {
      return one.get(after) as Row | undefined;
    } catch {
      return 'error';
    }
  };
  for (let guard = 0; guard < 10_000_000; guard++) {
    let got: Row[] | null;
    try {
      got = batch.all(last) as Row[];
    } catch {
      got = null;
    }
    if (got) {
      if (got.length === 0) break;
      rows.push(...got);
      last = Number(got[got.length - 1]!._rowid_);
      continue;
    }
    const r = tryOne(last);
    if (r === undefined) break;
    if (r !== 'error') {
      rows.push(r);
      last = Number(r._rowid_);
      continue;
    }
    // Unreadable just after `last`: find a readable seek point further on.
    skipped++;
    let step = 1;
    let good: number | null = null;
    while (last + step < ROWID_MAX) {
      const probe = tryOne(last + step);
      if (probe !== 'error') {
        good = last + step;
        break;
      }
      step *= 2;
    }
    if (good === null) break;
    let lo = last;
    let hi = good;
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (tryOne(mid) === 'error') lo = mid;
      else hi = mid;
    }
    const next = tryOne(hi);
    if (next === undefined || next === 'error') break;
    rows.push(next);
    last = Number(next._rowid_);
  }
  return { rows, skipped };
}

function stripRowid(r: Row): Row {
  const { _rowid_: _drop, ...rest } = r;
  return rest;
}

const STATUS_SET: ReadonlySet<string> = new Set(STATUSES);
/** Attempt outcomes that did not settle the row: it moved on under another claim, or was given back. */
const UNSETTLING = new Set(['released', 'lost', 'conflict']);

/**
 * A salvaged row older than its own attempt history: the page with the row's newest copy was
 * lost, and an older copy (a free page, an earlier WAL frame, the snapshot) stood in for it,
 * while the attempt row of what happened next survived on another page. Left so, the file is
 * claimed again: run twice, or recorded dead "vanished" when it had been moved (60-second soak,
 * a file gone dead at attempt 5 came back as failed at 4). The row is brought
 * up to the last settling attempt of its version: completed, dead (a failure that recorded an
 * after-action: only a dead one does), or failed and due now. Only within the row's version:
 * an attempt of a newer one does not carry that version's fingerprint. Returns how many.
 */
export function rollForward(rows: SalvagedRows): number {
  const last = new Map<string, Row>();
  for (const a of rows.attempts) {
    if (a.ended_at === null || UNSETTLING.has(String(a.outcome))) continue;
    const url = String(a.file_url);
    const prev = last.get(url);
    const later = !prev || Number(a.version) > Number(prev.version) || (Number(a.version) === Number(prev.version) && Number(a.attempt) > Number(prev.attempt));
    if (later) last.set(url, a);
  }
  let n = 0;
  for (const r of rows.checkpoints) {
    const a = last.get(String(r.file_url));
    if (!a || Number(a.version) !== Number(r.version)) continue;
    const attempt = Number(a.attempt);
    const status = statusAfterAttempt(String(a.outcome), (a.after_action as string | null) ?? null);
    const done = status === 'completed';
    // Written before that attempt ended: every store writes the row in the attempt's own
    // transaction, at its end time. A later row (a requeue, say) stands.
    const older = String(r.updated_at) < String(a.ended_at);
    const behind = attempt > Number(r.attempts) || (attempt === Number(r.attempts) && status !== String(r.status));
    if (!older || !behind) continue;
    const failures = done ? Number(r.retry_count) : Number(r.retry_count) + Math.max(1, attempt - Number(r.attempts));
    Object.assign(r, {
      status, attempts: attempt, retry_count: failures, processed_by: a.worker_id, claim_token: a.claim_token, started_at: a.started_at,
      completed_at: done ? a.ended_at : failureCompletedAt(status, String(a.ended_at)), due_at: status === 'failed' ? a.ended_at : null,
      error_message: done ? null : a.error_message, after_action: done ? a.after_action : failureAfterAction(status, a.after_action as string | null),
      processing_time_ms: a.duration_ms ?? 0, handler_pid: null, updated_at: a.ended_at,
    });
    n++;
  }
  return n;
}

const STATUS_RANK: Record<string, number> = { completed: 4, dead: 3, failed: 2, processing: 1, pending: 0 };

/** Sort page-scan records into the three tables by shape; keep the newest copy of each row. */
export function classify(records: readonly ScannedRecord[]): {
  checkpoints: Map<string, Row>;
  attempts: Map<number, Row>;
  tombstones: Map<string, Row>;
} {
  // Write order first (see ScannedRecord.order): the row's own time stamps are not write
  // order, since a replayed outcome carries the time it happened, and a copy of the row written
  // earlier can say later (60-second soak: a file recorded dead by a replay came
  // back from the database file as the failed row that a claim given back had written before).
  const checkpoints = new Map<string, { row: Row; order: number }>();
  const attempts = new Map<number, { row: Row; order: number }>();
  const tombstones = new Map<string, { row: Row; order: number }>();
  for (const rec of records) {
    const v = rec.values;
    const order = rec.order;
    if (rec.rowid !== null && isCheckpointRecord(v)) {
      const row = toRow(CHECKPOINT_COLS, v);
      const prev = checkpoints.get(String(row.file_url));
      if (!prev || order > prev.order || (order === prev.order && newerCheckpoint(row, prev.row))) checkpoints.set(String(row.file_url), { row, order });
    } else if (rec.rowid !== null && isAttemptRecord(v)) {
      const row = toRow(ATTEMPT_COLS, v);
      row.id = rec.rowid;
      const prev = attempts.get(rec.rowid);
      if (!prev || order > prev.order || (order === prev.order && String(row.ended_at ?? '') > String(prev.row.ended_at ?? ''))) attempts.set(rec.rowid, { row, order });
    } else if (rec.rowid === null && isTombstoneRecord(v)) {
      const row = toRow(TOMBSTONE_COLS, v);
      const prev = tombstones.get(String(row.file_url));
      if (!prev || order > prev.order || (order === prev.order && String(row.purged_at) > String(prev.row.purged_at))) tombstones.set(String(row.file_url), { row, order });
    }
  }
  const rows = <K>(m: Map<K, { row: Row }>) => new Map([...m].map(([k, x]) => [k, x.row]));
  return { checkpoints: rows(checkpoints), attempts: rows(attempts), tombstones: rows(tombstones) };
}

function newerCheckpoint(a: Row, b: Row): boolean {
  const ua = String(a.updated_at);
  const ub = String(b.updated_at);
  if (ua !== ub) return ua > ub;
  if (Number(a.version) !== Number(b.version)) return Number(a.version) > Number(b.version);
  return (STATUS_RANK[String(a.status)] ?? 0) > (STATUS_RANK[String(b.status)] ?? 0);
}

function toRow(cols: readonly string[], v: readonly SqlValue[]): Row {
  const row: Row = {};
  cols.forEach((c, i) => (row[c] = v[i] ?? null));
  return row;
}

const isText = (x: SqlValue | undefined): x is string => typeof x === 'string';
const isInt = (x: SqlValue | undefined): boolean => typeof x === 'number' && Number.isInteger(x);
const isIso = (x: SqlValue | undefined): boolean => isText(x) && /^\d{4}-\d\d-\d\dT/.test(x);

function isCheckpointRecord(v: readonly SqlValue[]): boolean {
  return (
    v.length >= CHECKPOINT_COLS.length &&
    isText(v[0]) && isText(v[1]) && isText(v[2]) && isText(v[3]) && STATUS_SET.has(v[3]) &&
    isInt(v[14]) && isInt(v[15]) && isText(v[16]) && isIso(v[22])
  );
}

function isAttemptRecord(v: readonly SqlValue[]): boolean {
  return (
    v.length >= ATTEMPT_COLS.length && v[0] === null && isText(v[1]) && isInt(v[2]) && isInt(v[3]) &&
    isText(v[4]) && isIso(v[6]) && isText(v[8])
  );
}

function isTombstoneRecord(v: readonly SqlValue[]): boolean {
  return (
    v.length === TOMBSTONE_COLS.length && isText(v[0]) && isText(v[1]) && isInt(v[2]) &&
    (v[3] === 'completed' || v[3] === 'dead') && isIso(v[4])
  );
}

/** Create `target` through openDatabase (so: migrations, pragmas, mode) and fill it. */
export function buildFreshDatabase(
  target: string,
  rows: Pick<SalvagedRows, 'checkpoints' | 'attempts' | 'tombstones'>,
  fileMode?: number,
): { checkpoints: number; completed: number; attempts: number; tombstones: number } {
  fs.rmSync(target, { force: true });
  const db = openDatabase(target, { allowNetworkFs: true, ...(fileMode === undefined ? {} : { fileMode }) });
  try {
    const cpCols = columnsOf(db, 'file_checkpoints');
    const atCols = columnsOf(db, 'file_attempts');
    const tbCols = columnsOf(db, 'file_tombstones');
    const stmts = new Map<string, ReturnType<SqliteDatabase['prepare']>>();
    const ins = (table: string, cols: string[]) => {
      const key = `${table}:${cols.join(',')}`;
      let st = stmts.get(key);
      if (!st) {
        st = db.prepare(`INSERT OR IGNORE INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
        stmts.set(key, st);
      }
      return st;
    };
    let completed = 0;
    let cpN = 0;
    let atN = 0;
    let tbN = 0;
    db.transaction(() => {
      for (const r of rows.checkpoints) {
        const cols = cpCols.filter((c) => c in r && r[c] !== undefined);
        if (ins('file_checkpoints', cols).run(pick(r, cols)).changes === 1) {
          cpN++;
          if (r.status === 'completed') completed++;
        }
      }
      for (const r of rows.attempts) {
        const cols = atCols.filter((c) => c in r && r[c] !== undefined);
        atN += ins('file_attempts', cols).run(pick(r, cols)).changes;
      }
      for (const r of rows.tombstones) {
        const cols = tbCols.filter((c) => c in r && r[c] !== undefined);
        tbN += ins('file_tombstones', cols).run(pick(r, cols)).changes;
      }
    }).immediate();
    db.pragma('wal_checkpoint(TRUNCATE)');
    return { checkpoints: cpN, completed, attempts: atN, tombstones: tbN };
  } finally {
    db.close();
  }
}

function columnsOf(db: SqliteDatabase, table: string): string[] {
  return (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((r) => r.name);
}

function pick(r: Row, cols: readonly string[]): Record<string, SqlValue> {
  const o: Record<string, SqlValue> = {};
  for (const c of cols) o[c] = r[c] ?? null;
  return o;
}
