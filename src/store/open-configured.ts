/**
 * The one way to open the store a configuration names, for the daemon and for the CLI.
 *
 * Both see the ledger through this host's path prefixes (the ledger keeps the names shared by
 * all hosts). They differ in what they need from it:
 * - the daemon (`keepWorking`) gets a FallbackStore that keeps working in memory (journal, claim
 *   markers) while the database is locked, corrupt or unreachable, and its mode;
 * - the CLI gets the plain store, and a missing ledger is refused rather than created: `ckpt
 *   status` run by root before the daemon's first start would otherwise create a SQLite file the
 *   daemon's user cannot write, and against PostgreSQL a mistyped schema would get an empty
 *   ledger of its own.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.js';
import type { ResolvedConfig } from '../config/types.js';
import { groupIdOf } from './open-database.js';
import { FallbackStore, type ModeInfo, openStore } from './open-store.js';
import { PathMap } from './path-map.js';
import { withPathMap } from './path-mapped-store.js';
import { StoreUnavailableError } from './sqlite-errors.js';
import type { CheckpointStore, RetryPolicy } from './types.js';

type PostgresConfig = Extract<ResolvedConfig['database'], { kind: 'postgres' }>;

/**
 * How long one write waits synchronously for another process's lock before the store retries
 * asynchronously (until lockTimeoutMs). Every in-flight write waits its own slice, one after the
 * other, with the event loop blocked: measured with another process holding the lock and 8
 * writes in flight, 250 ms slices blocked the loop for up to 1,992 ms at a stretch (a soak
 * daemon's lease renewal came 3.5 s late that way), 20 ms slices for up to 208 ms (see
 * test/chaos/lease-renewal.test.ts). Short waits behind another daemon's transaction (a few
 * ms; a checkpoint up to about 200 ms) still end inside the slice or one async retry later.
 */
export const BUSY_WAIT_SLICE_MS = 20;

/** The daemon's way: keep working while the database cannot be used. */
export interface KeepWorking {
  logger: Logger;
  workerId: string;
  /** One mutable copy shared by every store layer, so that a reload can change the policy in place. */
  retry: RetryPolicy;
}

export interface DaemonLedger {
  /** Seen through this host's path prefixes. */
  store: CheckpointStore;
  /** normal or degraded, since when and why. */
  mode: () => ModeInfo;
  /** The SQLite file, or PostgreSQL's `host:port/db` (never the URL: it may carry a password). */
  location: string;
  /** The SQLite file (metrics report its size); undefined with PostgreSQL. */
  databasePath?: string;
}

/** The CLI's ledger was never created: nothing has run with this configuration yet. */
export class NoLedgerError extends Error {
  override readonly name = 'NoLedgerError';
}

/**
 * Opens the configured store. With `keepWorking` (the daemon): a FallbackStore and its mode; a
 * PostgreSQL server unreachable at start throws StoreUnavailableError, PostgreSQL without a
 * fallbackDir a ConfigError. Without it (the CLI): the
 * plain store; a ledger that does not exist yet throws NoLedgerError.
 */
export async function openConfiguredStore(config: ResolvedConfig, keepWorking: KeepWorking): Promise<DaemonLedger>;
export async function openConfiguredStore(config: ResolvedConfig, keepWorking?: undefined, reading?: ReadingOptions): Promise<CheckpointStore>;
export async function openConfiguredStore(config: ResolvedConfig, keepWorking?: KeepWorking, reading: ReadingOptions = {}): Promise<DaemonLedger | CheckpointStore> {
  const pathMap = new PathMap(config.pathPrefixes);
  if (keepWorking === undefined) {
    const db = config.database;
    const store = db.kind === 'sqlite' ? openCliSqlite(config, db.path, reading) : await openCliPostgres(config, db);
    return withPathMap(store, pathMap);
  }
  const localPath = (p: string) => pathMap.toLocal(p);
  const db = config.database;
  let opened: { store: FallbackStore; location: string; databasePath?: string };
  if (db.kind === 'sqlite') opened = openDaemonSqlite(config, db.path, keepWorking, localPath);
  else if (config.fallbackDir === undefined) {
    throw ConfigError.at(
      config.configPath,
      'fallbackDir',
      'missing: with PostgreSQL, ckpt run needs a folder on a local disk for the journals and claim markers it keeps while the server is unreachable (e.g. "/var/lib/ckpt/fallback")',
    );
  } else opened = await openDaemonPostgres(config, db, config.fallbackDir, keepWorking, localPath);
  const fb = opened.store;
  return { ...opened, store: withPathMap(fb, pathMap), mode: () => fb.mode() };
}

/** For commands that only read (`ckpt top`). */
export interface ReadingOptions {
  /** Open the SQLite file read-only: no pragma or migration writes, nothing to block a writer. */
  readonly?: boolean;
  /** SQLite's busy wait, instead of `lockTimeoutMs` (it blocks the event loop while it waits). */
  busyTimeoutMs?: number;
}

function openCliSqlite(config: ResolvedConfig, file: string, reading: ReadingOptions): CheckpointStore {
  if (!fs.existsSync(file)) {
    throw new NoLedgerError(`no database at ${file}: nothing has run with this configuration yet (start \`ckpt run\`), or "database" points elsewhere`);
  }
  // The CLI can afford SQLite's own busy wait: it blocks nothing but itself.
  return openStore(file, {
    busyTimeoutMs: reading.busyTimeoutMs ?? config.lockTimeoutMs,
    readonly: reading.readonly ?? false,
    lockTimeoutMs: config.lockTimeoutMs,
    fileMode: config.fileMode,
    retry: config.retry,
    onChange: config.onChange,
  });
}

/**
 * A command's PostgreSQL store, not yet checked or migrated. node-postgres is loaded only here,
 * so SQLite users never load it.
 */
export async function commandPostgresStore(config: ResolvedConfig, db: PostgresConfig, applicationName: string) {
  const { PostgresStore } = await import('./postgres/index.js');
  return new PostgresStore({
    url: db.url,
    schema: db.schema,
    retry: config.retry,
    onChange: config.onChange,
    connectTimeoutMs: config.lockTimeoutMs,
    // One command, one query at a time: a second connection would only cost the server a slot.
    maxConnections: 1,
    applicationName,
  });
}

async function openCliPostgres(config: ResolvedConfig, db: PostgresConfig): Promise<CheckpointStore> {
  const store = await commandPostgresStore(config, db, 'ckpt-cli');
  try {
    if ((await store.schemaVersion()) === null) {
      throw new NoLedgerError(
        `no ckpt ledger in schema ${db.schema} of ${store.target}: nothing has run with this configuration yet (start \`ckpt run\`), or "schema" names another one`,
      );
    }
    await store.ensureReady();
    return store;
  } catch (err) {
    await store.close();
    throw err;
  }
}

function openDaemonSqlite(config: ResolvedConfig, file: string, use: KeepWorking, localPath: (p: string) => string) {
  // Keeps working in memory (journaled, with claim markers) when the database is locked or
  // corrupt, and reconciles when it is usable again; fb.mode() says which.
  const store = openStore(file, {
    fallback: { logger: use.logger, workerId: use.workerId, localPath, ...(config.fallbackDir === undefined ? {} : { dir: config.fallbackDir }) },
    retry: use.retry,
    onChange: config.onChange,
    lockTimeoutMs: config.lockTimeoutMs,
    fileMode: config.fileMode,
    ...(config.group !== undefined ? { groupId: groupIdOf(config.group) } : {}),
    // Each busy wait blocks the event loop; retry asynchronously around short waits instead.
    busyTimeoutMs: Math.min(BUSY_WAIT_SLICE_MS, config.lockTimeoutMs),
  });
  return { store, location: file, databasePath: file };
}

async function openDaemonPostgres(config: ResolvedConfig, db: PostgresConfig, fallbackDir: string, use: KeepWorking, localPath: (p: string) => string) {
  const log = use.logger;
  // Loaded only when used: SQLite deployments do not pay for node-postgres at start-up.
  const { PostgresPrimary } = await import('./postgres/fallback-primary.js');
  const pg: InstanceType<typeof PostgresPrimary> = new PostgresPrimary({
    url: db.url,
    schema: db.schema,
    retry: use.retry,
    onChange: config.onChange,
    connectTimeoutMs: config.lockTimeoutMs,
    onConnectionError: (e) => log.warn({ database: pg.location, code: (e as { code?: string }).code }, 'PostgreSQL connection lost'),
    fallbackDir,
  });
  // The same degraded mode as a locked SQLite file while the server is unreachable (memory,
  // journal in fallbackDir, claim markers for this host only); a server that refuses ckpt
  // (password, privilege) stops the start with exit 69.
  const store = await FallbackStore.open(pg, {
    fallback: { logger: log, workerId: use.workerId, localPath },
    retry: use.retry,
    onChange: config.onChange,
    lockTimeoutMs: config.lockTimeoutMs,
    fileMode: config.fileMode,
  });
  const m = store.mode();
  if (m.mode === 'degraded') {
    // Started without the server, this process would know no file's state: every file in the
    // folder would be new to it, completed ones included, so it could run nothing anyway.
    await store.close();
    throw new StoreUnavailableError('locked', `${pg.location} is unreachable at start: ${m.reason ?? '?'}`, undefined);
  }
  return { store, location: pg.location };
}
