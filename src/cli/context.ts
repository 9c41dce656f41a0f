/**
 * What every subcommand needs before it does its own work: the configuration (loaded the one
 * way, src/config/load.ts) and the store (opened the one way, src/store/open-store.ts).
 */
import fs from 'node:fs';
import { loadConfig } from '../config/load.js';
import type { ConfigOverrides, ResolvedConfig } from '../config/types.js';
import { openStore } from '../store/open-store.js';
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
 * Opens the configured store. Everything that goes wrong here is "unavailable" (exit 69): the
 * configuration itself was valid, the database is not usable right now.
 *
 * A missing SQLite file is refused rather than created: `ckpt status` run by root before the
 * daemon's first start would otherwise create a database the daemon's user cannot write.
 */
export async function openCliStore(config: ResolvedConfig): Promise<CheckpointStore> {
  const db = config.database;
  let target: string;
  if (db.kind === 'sqlite') {
    if (!fs.existsSync(db.path)) {
      throw new CliError(
        EXIT.UNAVAILABLE,
        `no database at ${db.path}: nothing has run with this configuration yet (start \`ckpt run\`), or "database" points elsewhere`,
      );
    }
    target = db.path;
  } else {
    target = db.url;
  }
  try {
    // The CLI can afford SQLite's own busy wait: it blocks nothing but itself.
    return await openStore(target, {
      busyTimeoutMs: config.lockTimeoutMs,
      lockTimeoutMs: config.lockTimeoutMs,
      fileMode: config.fileMode,
      retry: config.retry,
      onChange: config.onChange,
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    if (db.kind === 'postgres') {
      // Never echo the URL: it may carry a password.
      throw new CliError(EXIT.UNAVAILABLE, `cannot use the PostgreSQL database: ${why}`, { cause: err });
    }
    throw new CliError(EXIT.UNAVAILABLE, why, { cause: err });
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
