/**
 * Before the first claim: what a mover killed mid-move left behind (partial copies in a
 * destination, files set aside in a watched folder).
 */
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/types.js';
import { cleanStaleMoveTemps, removeStaleMoveTemps } from '../run/after-action.js';

export async function cleanMoveLeftovers(config: ResolvedConfig, log: Logger): Promise<void> {
  // Partial copies left by a mover that was killed mid-move (its file is moved again later).
  for (const a of [config.onSuccess, config.onDead]) {
    if (a.kind !== 'move') continue;
    const n = await removeStaleMoveTemps(a.dir);
    if (n > 0) log.warn({ folder: a.dir, removed: n }, 'removed partial copies left by a mover that was killed mid-move');
  }
  // Files a mover killed mid-removal left set aside in a watched folder (see removeIfSame).
  if (config.onSuccess.kind !== 'keep' || config.onDead.kind !== 'keep') {
    for (const w of config.watch) {
      const { removed, kept } = await cleanStaleMoveTemps(w.dir);
      if (removed > 0) log.warn({ folder: w.dir, removed }, 'removed files a mover killed mid-move had set aside (their data is in the destination)');
      for (const p of kept) log.error({ path: p, folder: w.dir }, 'a mover killed mid-move left this file set aside; its original name is unknown: move it back by hand');
    }
  }
}
