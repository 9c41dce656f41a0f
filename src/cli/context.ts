/**
 * What every subcommand needs before it does its own work: the configuration (loaded the one
 * way, src/config/load.ts) and the store (opened the one way, src/store/open-configured.ts).
 */
import { loadConfig } from '../config/load.js';
import type { ConfigOverrides, ResolvedConfig } from '../config/types.js';
import { NoLedgerError, openConfiguredStore, type ReadingOptions } from '../store/open-configured.js';
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
 * Opens the configured store (src/store/open-configured.ts), seen through this host's path
 * prefixes (so that `show`, `list` and `retry` speak this host's paths), and refusing a ledger
 * that does not exist yet. Everything that goes wrong here is "unavailable" (exit 69): the
 * configuration itself was valid, the database is not usable right now. The PostgreSQL URL is
 * never echoed (it may carry a password): messages name `postgres host:port/db` and the schema.
 */
export async function openCliStore(config: ResolvedConfig, opts: ReadingOptions = {}): Promise<CheckpointStore> {
  try {
    return await openConfiguredStore(config, undefined, opts);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const message = err instanceof NoLedgerError || config.database.kind === 'sqlite' ? why : `cannot use the PostgreSQL database: ${why}`;
    throw new CliError(EXIT.UNAVAILABLE, message, { cause: err });
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
