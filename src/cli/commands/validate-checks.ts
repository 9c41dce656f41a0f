/**
 * `ckpt validate`'s checks of the world a valid config points at: its folders (they exist, this
 * user may write where ckpt writes, and they sit on the kind of file system the config expects)
 * and its database (it opens read-only, its schema version, whether a process is degraded).
 * Nothing here creates, writes or locks anything: validate runs as the unit's ExecStartPre, with
 * a daemon possibly running on the same database.
 */
import fs from 'node:fs';
import path from 'node:path';
import { routeMoveFolders } from '../../config/routes.js';
import type { ResolvedConfig, WatchConfig } from '../../config/types.js';
import { fileSystemOf, isNetworkFileSystem, type MountOptions } from '../../mounts.js';
import { fallbackDirForConfig, readFallbackStates } from '../../store/fallback/state-files.js';
import { LATEST_SCHEMA_VERSION, currentVersion, openDatabase, type SqliteDatabase } from '../../store/open-database.js';
import { classifySqliteError } from '../../store/sqlite-errors.js';
import { mib, type Check } from './doctor.js';

const { R_OK, W_OK, X_OK } = fs.constants;

/** What ckpt does in a folder, and so what it must be allowed there. */
export interface FolderUse {
  name: string;
  dir: string;
  /** access(2) mode this user needs. */
  access: number;
  /** 'local': refuse a network file system (SQLite's WAL); a WatchConfig: poll rules apply. */
  fs: 'local' | 'any' | WatchConfig;
  /** ckpt creates the folder when missing (the database's folder; createDirs). */
  created: boolean;
}

/** Every folder the config names, with what ckpt needs there. */
/** True when files leave their folder after their run (an after-action that moves or deletes them). */
function leavesFolder(r: Pick<ResolvedConfig, 'onSuccess' | 'onDead'>): boolean {
  return [r.onSuccess, r.onDead].some((a) => a.kind !== 'keep');
}

export function folderUses(config: ResolvedConfig): FolderUse[] {
  // A watched folder is listed (R|X); files leave it (W) when an after-action moves or deletes them.
  const uses: FolderUse[] = config.watch.map((w, i) => ({
    name: `watch[${i}].dir`,
    dir: w.dir,
    access: R_OK | X_OK | (leavesFolder(w.route ?? config) ? W_OK : 0),
    fs: w,
    created: config.createDirs,
  }));
  for (const [key, a] of [
    ['onSuccess.moveTo', config.onSuccess],
    ['onDead.moveTo', config.onDead],
  ] as const) {
    if (a.kind === 'move') uses.push({ name: key, dir: a.dir, access: W_OK | X_OK, fs: 'any', created: config.createDirs });
  }
  for (const { key, dir } of routeMoveFolders(config)) uses.push({ name: key, dir, access: W_OK | X_OK, fs: 'any', created: config.createDirs });
  if (config.database.kind === 'sqlite') {
    // SQLite creates -wal and -shm beside the database.
    uses.push({ name: 'database folder', dir: path.dirname(config.database.path), access: W_OK | X_OK, fs: 'local', created: true });
  }
  const fallbackDir = fallbackDirForConfig(config.database, config.fallbackDir);
  if (config.fallbackDir !== undefined && fallbackDir !== null) {
    uses.push({ name: 'fallbackDir', dir: fallbackDir, access: W_OK | X_OK, fs: 'local', created: true });
  }
  return uses;
}

/** `mounts`: the mount table to read (default the kernel's; tests pass their own). */
export function folderCheck(use: FolderUse, mounts: MountOptions = {}): Check {
  const { name, dir } = use;
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') return { name, level: 'fail', message: `cannot inspect ${dir}: ${code ?? String(err)}` };
    if (!use.created) return { name, level: 'fail', message: `folder ${dir} does not exist (create it, or set "createDirs": true)` };
    const parent = nearestExisting(dir);
    if (parent !== null && canAccess(parent, W_OK | X_OK)) return { name, level: 'warn', message: `folder ${dir} does not exist yet: ckpt run creates it` };
    return { name, level: 'fail', message: `folder ${dir} does not exist, and this user cannot create it (${parent ?? '/'} is not writable)` };
  }
  if (!st.isDirectory()) return { name, level: 'fail', message: `${dir} is not a folder` };
  if (!canAccess(dir, use.access)) {
    return { name, level: 'fail', message: `folder ${dir} is not ${accessWords(use.access)} by this user (uid ${process.getuid?.() ?? '?'})` };
  }
  const fsType = fileSystemOf(dir, mounts).fsType;
  const network = isNetworkFileSystem(dir, mounts);
  const where = `${dir} (${accessWords(use.access)}, ${fsType}${network ? ', a network file system' : ''})`;
  if (use.fs === 'local' && network) {
    return { name, level: 'fail', message: `${where}: SQLite's WAL locks do not hold on a network file system; use a local disk` };
  }
  if (typeof use.fs === 'object' && network && use.fs.poll === false) {
    return { name, level: 'warn', message: `${where}: "poll": false, but inotify does not see files other hosts write there; set "poll": "auto"` };
  }
  if (typeof use.fs === 'object' && !network && use.fs.poll === true) {
    return { name, level: 'ok', message: `${where}, polled ("poll": true; inotify would do on a local disk)` };
  }
  return { name, level: 'ok', message: typeof use.fs === 'object' && network ? `${where}, polled` : where };
}

/**
 * The SQLite database: opened read-only (never created), its schema version, and whether the
 * processes using it are degraded. A locked database is a warn: ckpt run starts anyway and
 * works degraded until the lock goes.
 */
export function sqliteDatabaseChecks(file: string, lockTimeoutMs: number): Check[] {
  const name = 'database';
  if (!fs.existsSync(file)) {
    const dir = path.dirname(file);
    const creatable = canAccess(dir, W_OK | X_OK) || (!fs.existsSync(dir) && canAccess(nearestExisting(dir) ?? '/', W_OK | X_OK));
    return [
      creatable
        ? { name, level: 'ok', message: `${file} does not exist yet: ckpt run creates it (schema version ${LATEST_SCHEMA_VERSION})` }
        : { name, level: 'fail', message: `${file} does not exist, and this user cannot create it in ${dir}` },
    ];
  }
  let conn: SqliteDatabase | undefined;
  try {
    // Short: a daemon's transaction holds the lock for milliseconds; anything longer is a lock.
    conn = openDatabase(file, { readonly: true, anyVersion: true, busyTimeoutMs: Math.min(lockTimeoutMs, 1_000), allowNetworkFs: true });
    return [{ name, level: 'ok', message: `${file} opens (read-only, ${mib(fs.statSync(file).size)})` }, schemaCheck(file, currentVersion(conn))];
  } catch (err) {
    const e = err as Error & { kind?: string; cause?: unknown };
    const locked = e.kind === 'locked' || classifySqliteError(e.cause ?? e) === 'transient';
    if (locked) return [{ name, level: 'warn', message: `${file} is locked by another process (${e.message}): ckpt run starts and works degraded until the lock goes` }];
    return [{ name, level: 'fail', message: `${file} cannot be read: ${e.message}` }];
  } finally {
    conn?.close();
  }
}

/** ok at the current version, warn for an older one (ckpt run migrates it), fail for a newer one. */
export function schemaCheck(where: string, version: number | null, latest = LATEST_SCHEMA_VERSION): Check {
  const name = 'schema';
  if (version === null) return { name, level: 'ok', message: `no ckpt ledger in ${where} yet: ckpt run creates it (version ${latest})` };
  if (version === latest) return { name, level: 'ok', message: `${where}: schema version ${version} (current)` };
  if (version < latest) return { name, level: 'warn', message: `${where}: schema version ${version}; ckpt run migrates it to ${latest} at start` };
  return { name, level: 'fail', message: `${where}: schema version ${version} is newer than this ckpt knows (${latest}): upgrade ckpt` };
}

/** warn for each live process that says it is degraded (its state file in the fallback folder). */
export function modeChecks(config: ResolvedConfig, now: number): Check[] {
  const dir = fallbackDirForConfig(config.database, config.fallbackDir);
  const degraded = dir === null ? [] : readFallbackStates(dir).filter((s) => s.mode === 'degraded');
  if (degraded.length === 0) return [{ name: 'mode', level: 'ok', message: 'no ckpt process is degraded' }];
  return degraded.map((s) => ({
    name: 'mode',
    level: 'warn',
    message:
      `${s.workerId} (pid ${s.owner.pid}) degraded ${s.since === null ? '' : `for ${Math.round((now - s.since) / 1000)} s `}` +
      `(${s.kind ?? '?'}): ${s.reason ?? '?'}`,
  }));
}

function canAccess(p: string, mode: number): boolean {
  try {
    fs.accessSync(p, mode);
    return true;
  } catch {
    return false;
  }
}

function nearestExisting(dir: string): string | null {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    if (fs.existsSync(d)) return d;
    if (d === path.dirname(d)) return null;
  }
}

function accessWords(mode: number): string {
  return mode & W_OK ? 'writable' : 'readable';
}
