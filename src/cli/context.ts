/**
 * What every subcommand needs before it does its own work: the configuration (loaded the one
 * way, src/config/load.ts) and the store (opened the one way, src/store/open-store.ts).
 */
import fs from 'node:fs';
import { loadConfig } from '../config/load.js';
import type { ConfigOverrides, ResolvedConfig } from '../config/types.js';
import { openStore } from '../store/open-store.js';
import { PathMap } from '../store/path-map.js';
import { withPathMap } from '../store/path-mapped-store.js';
import type { CheckpointStore } from '../store/types.js';
import { CliError, EXIT } from './exit-codes.js';

/** Options every subcommand accepts (declared once, on the program). */
export interface GlobalOptions {
  config?: string;
  database?: string;
}

export const DEFAULT_CONFIG_FILE = './ckpt.config.json';

/** `--config`, else $CKPT_CONFIG, else ./ckpt.config.json. */
export function configPathOf(globals: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.CKPT_CONFIG;
  return globals.config ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_CONFIG_FILE);
}

/** Loads the config with the command line as the last layer; throws ConfigError (exit 78). */
export function loadCliConfig(globals: GlobalOptions, overrides: ConfigOverrides = {}): ResolvedConfig {
  const all: ConfigOverrides = { ...overrides };
  if (globals.database !== undefined) all.database = globals.database;
  return loadConfig(configPathOf(globals), { overrides: all });
}

/**
 * Opens the configured store, seen through this host's path prefixes (so that `show`, `list`
 * and `retry` speak this host's paths). Everything that goes wrong here is "unavailable"
 * (exit 69): the configuration itself was valid, the database is not usable right now.
 *
 * A missing ledger is refused rather than created: `ckpt status` run by root before the
 * daemon's first start would otherwise create a SQLite file the daemon's user cannot write,
 * and against PostgreSQL, a mistyped schema would get an empty ledger of its own.
 */
export async function openCliStore(config: ResolvedConfig, opts: CliStoreOptions = {}): Promise<CheckpointStore> {
  const store = config.database.kind === 'sqlite' ? openSqlite(config, config.database.path, opts) : await openPostgres(config, config.database);
  return withPathMap(store, new PathMap(config.pathPrefixes));
}

/** For commands that only read (`ckpt top`). */
export interface CliStoreOptions {
  /** Open the SQLite file read-only: no pragma or migration writes, nothing to block a writer. */
  readonly?: boolean;
  /** SQLite's busy wait, instead of `lockTimeoutMs` (it blocks the event loop while it waits). */
  busyTimeoutMs?: number;
}

function openSqlite(config: ResolvedConfig, file: string, opts: CliStoreOptions): CheckpointStore {
  if (!fs.existsSync(file)) {
    throw new CliError(
      EXIT.UNAVAILABLE,
      `no database at ${file}: nothing has run with this configuration yet (start \`ckpt run\`), or "database" points elsewhere`,
    );
  }
  try {
    // The CLI can afford SQLite's own busy wait: it blocks nothing but itself.
    return openStore(file, {
      busyTimeoutMs: opts.busyTimeoutMs ?? config.lockTimeoutMs,
      readonly: opts.readonly ?? false,
      lockTimeoutMs: config.lockTimeoutMs,
      fileMode: config.fileMode,
      retry: config.retry,
      onChange: config.onChange,
    });
  } catch (err) {
    throw new CliError(EXIT.UNAVAILABLE, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

/**
 * The URL is never echoed (it may carry a password): messages name `postgres host:port/db`
 * and the schema. node-postgres is loaded only here, so SQLite users never load it.
 */
async function openPostgres(config: ResolvedConfig, db: Extract<ResolvedConfig['database'], { kind: 'postgres' }>): Promise<CheckpointStore> {
  const { PostgresStore } = await import('../store/postgres/index.js');
  const store = new PostgresStore({
    url: db.url,
    schema: db.schema,
    retry: config.retry,
    onChange: config.onChange,
    connectTimeoutMs: config.lockTimeoutMs,
    // One command, one query at a time: a second connection would only cost the server a slot.
    maxConnections: 1,
    applicationName: 'ckpt-cli',
  });
  try {
    if ((await store.schemaVersion()) === null) {
      throw new CliError(
        EXIT.UNAVAILABLE,
        `no ckpt ledger in schema ${db.schema} of ${store.target}: nothing has run with this configuration yet (start \`ckpt run\`), or "schema" names another one`,
      );
    }
    await store.ensureReady();
    return store;
  } catch (err) {
    await store.close();
    if (err instanceof CliError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new CliError(EXIT.UNAVAILABLE, `cannot use the PostgreSQL database: ${why}`, { cause: err });
  }
}

/** Runs `fn` with an open store and always closes it. */
export async function withStore<T>(config: ResolvedConfig, fn: (store: CheckpointStore) => Promise<T>): Promise<T> {
  const store = await openCliStore(config);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

// The print helpers moved to ./output.js (no database or config code loaded with them); kept
// here too for commands written against this module (commands/doctor.ts).
export { print, printErr, printJson } from './output.js';
