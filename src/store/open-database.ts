import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { fileSystemOf, isNetworkFileSystem } from '../mounts.js';
import { MIGRATIONS } from './migrations/index.js';
import { StoreUnavailableError, classifySqliteError, toStoreError } from './sqlite-errors.js';

export type SqliteDatabase = Database.Database;

export interface OpenOptions {
  /**
   * How long one statement waits for another connection's write lock inside SQLite. Every wait
   * blocks the event loop (better-sqlite3 is synchronous), so the daemon keeps it short and
   * retries asynchronously around it (see SqliteStore); the CLI can afford the default.
   */
  busyTimeoutMs?: number;
  /** File mode for a database file ckpt creates (SQLite gives -wal/-shm the same mode). */
  fileMode?: number;
  /** Group id for the database and its -wal/-shm (config `group`; with fileMode 0640, readers in that group). */
  groupId?: number;
  readonly?: boolean;
  /** With readonly: open a database of any schema version (`ckpt validate` reports the version itself). */
  anyVersion?: boolean;
  /** Override JOURNAL_SIZE_LIMIT (tests use a small one to prove the -wal file shrinks). */
  journalSizeLimitBytes?: number;
  /** Skip the network-file-system check. */
  allowNetworkFs?: boolean;
  /** The mount table to consult (default /proc/self/mounts; tests pass their own table). */
  mountsFile?: string;
}

/**
 * The -wal file is truncated back to this size after a checkpoint. Without a limit, a reader
 * that held a transaction open (the sqlite3 shell in BEGIN) left a 472 MB -wal behind for good
 * (measured here); with it the file shrinks at the next checkpoint after the reader lets go.
 */
export const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
/** Pages between automatic checkpoints: SQLite's default 1000 pages (about 4 MB) kept explicit. */
export const WAL_AUTOCHECKPOINT_PAGES = 1000;

/**
 * The one function that opens a ckpt database: refuses network file systems, sets the pragmas,
 * and brings the schema up to date. Every error it throws is either a StoreUnavailableError
 * (kind 'broken' for a corrupt or unopenable file, 'locked' when migrations could not get the
 * write lock) or a plain Error with a message meant for an operator.
 */
export function openDatabase(file: string, opts: OpenOptions = {}): SqliteDatabase {
  const abs = path.resolve(file);
  checkOrCreateFile(abs, opts);
  let db: SqliteDatabase;
  try {
    db = new Database(abs, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw toStoreError(err, `cannot open database ${abs}`);
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    if (!opts.readonly) {
      // WAL: readers (the sqlite3 shell, `ckpt status`) never block the daemons and vice versa.
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') {
        throw new Error(`database ${abs}: could not switch to WAL mode (journal_mode is ${String(mode)})`);
      }
    }
    // NORMAL in WAL mode: a commit survives a crash of ckpt or of the OS process, but a power
    // cut may take back every commit since the last sync of the -wal (it never corrupts the
    // file). FULL would fsync on every commit and cost 2-10x here (fdatasync p90 about 4 ms).
    // A completion taken back while its file is still in its folder only means the file runs
    // again (the idempotency key covers that): enough for `keep`. A commit that lets a file
    // leave its folder (a move or delete after it) is synced before the file goes, once per
    // batch (durable-commit.ts, docs/power-loss.md).
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${Math.floor(opts.journalSizeLimitBytes ?? JOURNAL_SIZE_LIMIT)}`);
    if (!opts.readonly) migrate(db);
    else if (!opts.anyVersion) checkSchemaVersion(db);
    if (opts.groupId !== undefined && !opts.readonly) {
      // SQLite gives -wal/-shm the database's mode, and (only when run as root) its owner: set
      // the group on all three so that a reader in that group can open them.
      for (const f of [abs, `${abs}-wal`, `${abs}-shm`]) {
        if (fs.existsSync(f)) fs.chownSync(f, -1, opts.groupId);
      }
    }
  } catch (err) {
    db.close();
    throw toStoreError(err, `cannot open database ${abs}`);
  }
  return db;
}

/** Before SQLite opens `abs`: its folder exists and is local, and a new file gets our mode. */
function checkOrCreateFile(abs: string, opts: OpenOptions): void {
  const dir = path.dirname(abs);
  if (!fs.existsSync(dir)) {
    // better-sqlite3 throws a TypeError without a code for this; say what is wrong instead.
    throw new StoreUnavailableError('broken', `cannot open database ${abs}: folder ${dir} does not exist`, 'SQLITE_CANTOPEN');
  }
  const mounts = opts.mountsFile === undefined ? {} : { mountsFile: opts.mountsFile };
  if (!opts.allowNetworkFs && isNetworkFileSystem(dir, mounts)) {
    const fsType = fileSystemOf(dir, mounts).fsType;
    throw new Error(
      `database ${abs} is on a network file system (${fsType}): SQLite's WAL needs shared memory that ` +
        `network file systems do not provide, so locks would not hold. Put the database on a local disk ` +
        `(the watched folders may stay on the network share).`,
    );
  }
  if (!opts.readonly && !fs.existsSync(abs)) {
    // Create it ourselves so it gets our mode (0600 by default) rather than 0644 under umask 022.
    try {
      fs.closeSync(fs.openSync(abs, fs.constants.O_CREAT | fs.constants.O_WRONLY, opts.fileMode ?? 0o600));
    } catch (err) {
      throw new StoreUnavailableError('broken', `cannot create database ${abs}: ${(err as Error).message}`, 'SQLITE_CANTOPEN', { cause: err });
    }
  }
}

/**
 * Apply missing migrations inside one IMMEDIATE transaction, re-reading user_version after the
 * write lock is held: two processes opening a fresh file at the same moment serialize here,
 * and the second finds nothing left to do.
 */
export function migrate(db: SqliteDatabase): void {
  const latest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
  if (currentVersion(db) === latest) return;
  db.transaction(() => {
    const from = currentVersion(db);
    if (from > latest) {
      throw new Error(`database schema version ${from} is newer than this ckpt knows (${latest}): upgrade ckpt`);
    }
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
  }).immediate();
}

/** The schema version this ckpt writes (the last migration's number). */
export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/** PRAGMA user_version: the number of the last migration applied to this database. */
export function currentVersion(db: SqliteDatabase): number {
  return Number(db.pragma('user_version', { simple: true }));
}

function checkSchemaVersion(db: SqliteDatabase): void {
  const v = currentVersion(db);
  const latest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
  if (v !== latest) throw new Error(`database schema version ${v}, expected ${latest}: open it once read-write to migrate`);
}

/** A group name or id (config `group`) as a numeric id, from /etc/group; throws when unknown. */
export function groupIdOf(group: string | number, groupFile = '/etc/group'): number {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of fs.readFileSync(groupFile, 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`group ${group}: no such group in ${groupFile}`);
}

/** `quick_check` returns rows other than "ok", or throws SQLITE_CORRUPT: both mean broken. */
export function quickCheck(db: SqliteDatabase): { ok: true } | { ok: false; problem: string } {
  try {
    const rows = db.pragma('quick_check') as { quick_check: string }[];
    const bad = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
    return bad.length === 0 ? { ok: true } : { ok: false, problem: bad.slice(0, 5).join('; ') };
  } catch (err) {
    if (classifySqliteError(err) === 'transient') throw err;
    return { ok: false, problem: (err as Error).message };
  }
}
