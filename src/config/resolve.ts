/**
 * From the checked file plus the environment and flag layers to a ResolvedConfig: merge the
 * layers, make every path absolute, apply the rules that span keys, then touch the file
 * system (folders must exist, or are created). All pure checks come before the first mkdir,
 * so a config that is wrong anywhere creates nothing.
 *
 * Folder policy (predictable, one rule each):
 * - the database's folder is always created when missing (like the database file itself,
 *   which SQLite creates);
 * - a missing watched folder or moveTo folder is an error (a typo must not create a folder
 *   nobody writes to), unless the file says "createDirs": true.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.js';
import { fileSystemOf, isNetworkFileSystem } from '../mounts.js';
import type { Layer } from './env.js';
import { DEFAULTS, isPostgresUrl, type FileConfig, type RawAfterAction, type RawDatabase } from './schema.js';
import type { PathPrefix } from '../store/path-map.js';
import { checkSharedFileTypes, resolveAfterAction, resolveHandler, resolveRoute, routeHandlers, routeMoveFolders } from './routes.js';
import type { AfterAction, DatabaseConfig, HandlerConfig, ResolvedConfig, WatchConfig } from './types.js';

export interface ResolveContext {
  /** The config file as the caller named it: the prefix of every message about the file. */
  display: string;
  /**
   * Collect mode (`ckpt validate`): the rules across keys push their problems here instead of
   * throwing the first, and the file-system section is skipped (nothing is created; validate
   * checks the folders itself). A problem that leaves nothing to resolve (no database) still throws.
   */
  problems?: ConfigError[];
  configPath: string;
  configDir: string;
  env: Readonly<Record<string, string | undefined>>;
}

/** A setting, where it came from, and the folder its relative paths are resolved against. */
interface Located<T> {
  value: T;
  source: string;
  key: string;
  baseDir: string;
}

/** The settings that the environment and the flags can override, after the layers are applied. */
interface Merged {
  database: Located<RawDatabase> | undefined;
  concurrency: number;
  log: ResolvedConfig['log'];
  workerId: string | undefined;
  http: ResolvedConfig['http'];
}

/** The watched folders, the handlers and after-actions, with every path absolute. */
interface Paths {
  watch: WatchConfig[];
  handler: HandlerConfig;
  onSuccess: AfterAction;
  onDead: AfterAction;
  /** Every folder an after-action moves files into, with the key that names it. */
  moveFolders: { key: string; dir: string }[];
}

/**
 * In four steps, in this order so that a config wrong anywhere creates nothing: merge the layers,
 * make paths absolute, check the rules across keys, then (unless collecting problems) create or
 * check folders and files.
 */
export function resolveConfig(file: FileConfig, layers: readonly Layer[], ctx: ResolveContext): ResolvedConfig {
  const report = (e: ConfigError): void => {
    if (ctx.problems === undefined) throw e;
    ctx.problems.push(e);
  };
  const abs = (p: string): string => path.resolve(ctx.configDir, p);
  const merged = mergeLayers(file, layers, ctx);
  const paths = resolvePaths(file, merged.concurrency, ctx, report);
  const pathPrefixes = resolvePathPrefixes(file.pathPrefixes, ctx.display, abs, report);
  const { database } = merged;
  if (database === undefined) {
    throw ConfigError.at(ctx.display, 'database', 'missing: set "database" in the file, CKPT_DATABASE, or --database');
  }
  const db = resolveDatabase(database, ctx.env);
  checkAcrossKeys(paths, db, database, ctx.display, report);
  const touch = ctx.problems === undefined;
  if (touch) touchFileSystem(file, paths, db, database, ctx.display);
  const fallbackDir = file.fallbackDir === undefined ? undefined : touch ? resolveFallbackDir(abs(file.fallbackDir), ctx.display) : abs(file.fallbackDir);

  return {
    configPath: ctx.configPath,
    configDir: ctx.configDir,
    database: db,
    watch: paths.watch,
    handler: paths.handler,
    concurrency: merged.concurrency,
    leaseMs: file.leaseMs,
    stableMs: file.stableMs,
    rescanMs: file.rescanMs,
    retry: { ...file.retry },
    onSuccess: paths.onSuccess,
    onDead: paths.onDead,
    onChange: file.onChange,
    shutdownGraceMs: file.shutdownGraceMs,
    lockTimeoutMs: file.lockTimeoutMs,
    log: merged.log,
    http: merged.http,
    workerId: merged.workerId,
    fileMode: file.fileMode,
    group: file.group === undefined ? undefined : String(file.group),
    createDirs: file.createDirs,
    pathPrefixes,
    ...(fallbackDir === undefined ? {} : { fallbackDir }),
    retention: file.retention === undefined ? null : { completedMs: file.retention.completed ?? null, deadMs: file.retention.dead ?? null, tombstonesMs: file.retention.tombstones ?? null },
  };
}

/** The file's values, then each layer (environment, then flags) in order: later layers win. */
function mergeLayers(file: FileConfig, layers: readonly Layer[], ctx: ResolveContext): Merged {
  let database: Located<RawDatabase> | undefined = file.database === undefined ? undefined : { value: file.database, source: ctx.display, key: 'database', baseDir: ctx.configDir };
  let concurrency = file.concurrency;
  let logLevel = file.log.level;
  let logFormat = file.log.format;
  let workerId = file.workerId;
  let http = file.http === undefined ? null : { port: file.http.port, host: file.http.host };
  for (const layer of layers) {
    if (layer.database !== undefined) database = { ...layer.database, key: '' };
    if (layer.concurrency !== undefined) concurrency = layer.concurrency;
    if (layer.logLevel !== undefined) logLevel = layer.logLevel;
    if (layer.logFormat !== undefined) logFormat = layer.logFormat;
    if (layer.workerId !== undefined) workerId = layer.workerId;
    if (layer.httpPort !== undefined) http = { port: layer.httpPort, host: http?.host ?? DEFAULTS.httpHost };
  }
  return { database, concurrency, log: { level: logLevel, format: logFormat }, workerId, http };
}

/**
 * Watched folders, handler and after-actions with absolute paths, each folder's route (its own
 * handler, retry or after-actions over the top-level ones), and the folders files are moved into.
 */
function resolvePaths(file: FileConfig, concurrency: number, ctx: ResolveContext, report: (e: ConfigError) => void): Paths {
  const watch: WatchConfig[] = file.watch.map((w, i) => {
    const dir = path.resolve(ctx.configDir, w.dir);
    const fileType = w.fileType ?? path.basename(dir);
    if (fileType === '') {
      report(ConfigError.at(ctx.display, `watch[${i}].fileType`, `missing: cannot name the file type after folder ${dir}; set "fileType"`));
    }
    return {
      dir,
      include: [...(w.include ?? [])],
      exclude: [...(w.exclude ?? [])],
      fileType,
      poll: w.poll,
      readyMarker: w.readyMarker,
      recursive: w.recursive,
      readiness: w.readiness,
      allowOtherLedgers: w.allowOtherLedgers,
    };
  });
  const handler = resolveHandler(file.handler, ctx.configDir);
  const afterAction = (a: RawAfterAction): AfterAction => resolveAfterAction(a, ctx.configDir);
  const onSuccess = afterAction(file.onSuccess);
  const onDead = afterAction(file.onDead);
  const top = { handler, concurrency, retry: { ...file.retry }, onSuccess, onDead };
  file.watch.forEach((w, i) => {
    const route = resolveRoute(w, i, top, ctx.configDir, ctx.display, report);
    if (route !== undefined) watch[i] = { ...watch[i]!, route };
  });
  checkSharedFileTypes(watch, ctx.display, report);
  const moveFolders = [
    ...(onSuccess.kind === 'move' ? [{ key: 'onSuccess.moveTo', dir: onSuccess.dir }] : []),
    ...(onDead.kind === 'move' ? [{ key: 'onDead.moveTo', dir: onDead.dir }] : []),
    ...routeMoveFolders({ watch, onSuccess, onDead }),
  ];
  return { watch, handler, onSuccess, onDead, moveFolders };
}

/** No folder files are moved into, and no SQLite database, may lie where a watcher sees it. */
function checkAcrossKeys(paths: Paths, db: DatabaseConfig, database: Located<RawDatabase>, display: string, report: (e: ConfigError) => void): void {
  const { watch } = paths;
  for (const { key, dir } of paths.moveFolders) {
    watch.forEach((w, i) => {
      if (covers(w, dir)) {
        report(
          ConfigError.at(display, key, `folder ${dir} is inside watched folder watch[${i}].dir (${w.dir}): moved files would be picked up again; move them elsewhere`),
        );
      }
    });
  }
  if (db.kind === 'sqlite') {
    watch.forEach((w, i) => {
      if (covers(w, path.dirname(db.path))) {
        report(
          ConfigError.at(
            database.source,
            database.key,
            `${db.path} is inside watched folder watch[${i}].dir (${w.dir}): its own files would be picked up; put it elsewhere`,
          ),
        );
      }
    });
  }
}

/** The only step that touches the disk: folders exist (or are created), module handlers are files. */
function touchFileSystem(file: FileConfig, paths: Paths, db: DatabaseConfig, database: Located<RawDatabase>, display: string): void {
  const { watch, handler } = paths;
  watch.forEach((w, i) => ensureFolder(w.dir, file.createDirs, display, `watch[${i}].dir`, fs.constants.R_OK | fs.constants.X_OK));
  for (const { key, dir } of paths.moveFolders) ensureFolder(dir, file.createDirs, display, key, fs.constants.W_OK | fs.constants.X_OK);
  if (db.kind === 'sqlite') ensureDatabaseFolder(db.path, database.source, database.key);
  if (handler.kind === 'module') ensureFile(handler.module, display, 'handler.module');
  for (const r of routeHandlers({ watch, handler })) if (r.handler.kind === 'module') ensureFile(r.handler.module, display, `${r.key}.module`);
}

/**
 * Where degraded mode keeps its journals and claim markers (created when missing). It must be
 * on a local disk: the markers keep two processes of THIS host from running one file, and on a
 * share they would look as if they protected other hosts too, which they cannot (pids and
 * leases in them are per host). `ckpt run` on PostgreSQL requires it (daemon.ts); the other
 * commands do not use it.
 */
function resolveFallbackDir(dir: string, source: string): string {
  if (statOrNull(dir, source, 'fallbackDir') === null) mkdirs(dir, source, 'fallbackDir');
  ensureFolder(dir, false, source, 'fallbackDir', fs.constants.W_OK | fs.constants.X_OK);
  if (isNetworkFileSystem(dir)) {
    throw ConfigError.at(
      source,
      'fallbackDir',
      `folder ${dir} is on a network file system (${fileSystemOf(dir).fsType}): claim markers there would look shared between hosts, and they protect one host only; use a local disk`,
    );
  }
  return dir;
}

/**
 * `local` made absolute; then no two prefixes may overlap on either side (one equal to or
 * inside another): a path would match two of them, and the mapping would depend on their order
 * and no longer be the same both ways.
 */
function resolvePathPrefixes(
  raw: FileConfig['pathPrefixes'],
  display: string,
  abs: (p: string) => string,
  report: (e: ConfigError) => void,
): PathPrefix[] {
  const out = raw.map((p) => ({ local: abs(p.local), shared: p.shared }));
  out.forEach((p, i) => {
    if (p.local === path.parse(p.local).root) {
      report(ConfigError.at(display, `pathPrefixes[${i}].local`, 'expected the folder where the share is mounted, not the root folder'));
    }
  });
  const inside = (a: string, b: string) => a === b || a.startsWith(b.endsWith('/') ? b : `${b}/`);
  for (let i = 0; i < out.length; i++) {
    for (let j = 0; j < i; j++) {
      for (const side of ['local', 'shared'] as const) {
        const a = out[i]![side];
        const b = out[j]![side];
        if (inside(a, b) || inside(b, a)) {
          report(
            ConfigError.at(
              display,
              `pathPrefixes[${i}].${side}`,
              `${JSON.stringify(a)} overlaps pathPrefixes[${j}].${side} (${JSON.stringify(b)}): a path would match both; give each folder one prefix`,
            ),
          );
        }
      }
    }
  }
  return out;
}

function resolveDatabase(db: Located<RawDatabase>, env: Readonly<Record<string, string | undefined>>): DatabaseConfig {
  const v = db.value;
  if (typeof v === 'string') {
    if (isPostgresUrl(v)) return { kind: 'postgres', url: v, schema: 'public', urlEnv: null };
    return { kind: 'sqlite', path: path.resolve(db.baseDir, v) };
  }
  const schema = v.schema ?? 'public';
  if (v.url !== undefined) return { kind: 'postgres', url: v.url, schema, urlEnv: null };
  const name = v.urlEnv ?? '';
  const url = env[name];
  const key = db.key === '' ? 'urlEnv' : `${db.key}.urlEnv`;
  if (url === undefined || url === '') {
    throw ConfigError.at(db.source, key, `environment variable ${name} is not set (it should hold the postgres:// URL)`);
  }
  if (!isPostgresUrl(url)) {
    throw ConfigError.at(db.source, key, `environment variable ${name} does not hold a postgres:// or postgresql:// URL`);
  }
  try {
    new URL(url);
  } catch {
    throw ConfigError.at(db.source, key, `environment variable ${name} does not hold a valid URL`);
  }
  return { kind: 'postgres', url, schema, urlEnv: name };
}

/** True when files put into `dir` would be seen by watcher `w`. */
function covers(w: WatchConfig, dir: string): boolean {
  if (dir === w.dir) return true;
  return w.recursive && dir.startsWith(w.dir.endsWith(path.sep) ? w.dir : w.dir + path.sep);
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a folder';
    case 'ENAMETOOLONG':
      return 'the path is too long';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ELOOP':
      return 'too many symbolic links';
    default:
      return code ?? (err instanceof Error ? err.message : String(err));
  }
}

function statOrNull(p: string, source: string, key: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ConfigError.at(source, key, `cannot inspect ${p}: ${describeFsError(err)}`);
  }
}

function mkdirs(dir: string, source: string, key: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw ConfigError.at(source, key, `cannot create folder ${dir}: ${describeFsError(err)}`);
  }
}

function ensureFolder(dir: string, create: boolean, source: string, key: string, access: number): void {
  let st = statOrNull(dir, source, key);
  if (st === null) {
    if (!create) {
      throw ConfigError.at(source, key, `folder ${dir} does not exist (create it, or set "createDirs": true)`);
    }
    mkdirs(dir, source, key);
    st = statOrNull(dir, source, key);
  }
  if (st === null || !st.isDirectory()) throw ConfigError.at(source, key, `${dir} is not a folder`);
  try {
    fs.accessSync(dir, access);
  } catch {
    const need = access & fs.constants.W_OK ? 'writable' : 'readable';
    throw ConfigError.at(source, key, `folder ${dir} is not ${need} by this user`);
  }
}

function ensureDatabaseFolder(dbPath: string, source: string, key: string): void {
  const st = statOrNull(dbPath, source, key);
  if (st !== null && st.isDirectory()) {
    throw ConfigError.at(source, key, `${dbPath} is a folder; expected the path of the database file`);
  }
  const dir = path.dirname(dbPath);
  const dirSt = statOrNull(dir, source, key);
  if (dirSt === null) mkdirs(dir, source, key);
  else if (!dirSt.isDirectory()) throw ConfigError.at(source, key, `${dir} is not a folder`);
  try {
    // SQLite needs to create -wal and -shm files beside the database.
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw ConfigError.at(source, key, `folder ${dir} is not writable by this user (the database needs it for its -wal file)`);
  }
}

function ensureFile(file: string, source: string, key: string): void {
  const st = statOrNull(file, source, key);
  if (st === null) throw ConfigError.at(source, key, `file ${file} does not exist`);
  if (!st.isFile()) throw ConfigError.at(source, key, `${file} is not a file`);
}
