/**
 * A folder belongs to one ledger: a second database on it would run every file again
 * (watch/folder-ownership.ts).
 */
import type { Logger } from 'pino';
import { EXIT } from '../cli/exit-codes.js';
import type { ResolvedConfig } from '../config/types.js';
import { claimFolders, ledgerOf } from '../watch/folder-ownership.js';

/** The exit code to stop the start with, or null to go on. */
export async function ownFolders(config: ResolvedConfig, log: Logger): Promise<number | null> {
  try {
    const refused = await foldersRefused(config, log);
    if (refused === null) return null;
    log.fatal(refused);
    return EXIT.CONFIG;
  } catch (err) {
    log.fatal({ err }, `cannot read the ledger's identity: ${(err as Error).message}`);
    return EXIT.UNAVAILABLE;
  }
}

/** The line refusing a watched folder that belongs to another ledger; null when all are this one's. */
export async function foldersRefused(config: ResolvedConfig, log: Logger): Promise<string | null> {
  const owned = claimFolders(config.watch, await ledgerOf(config), { configPath: config.configPath, warn: (f, m) => log.warn(f, m) });
  return owned.ok ? null : owned.line;
}
