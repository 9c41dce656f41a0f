/**
 * `ckpt purge --older-than DUR [--status completed|dead]`: delete old rows and their attempts.
 * The store keeps a small tombstone per purged file, so a purged file still lying in a watched
 * folder is not handled a second time.
 */
import type { ResolvedConfig } from '../../config/types.js';
import { formatCount, formatSpan } from '../../ops/format.js';
import type { PurgeStatus } from '../args.js';
import { withStore } from '../context.js';
import { print, printJson } from '../output.js';

export interface PurgeOptions {
  olderThan: number;
  /** Default ['completed']: dead files wait for a person until purged explicitly. */
  status: PurgeStatus[];
  json?: boolean;
}

export interface PurgeJson {
  purged: number;
  statuses: PurgeStatus[];
  olderThanMs: number;
  /** Rows last changed before this time were purged. */
  cutoff: string;
}

export async function purgeCommand(config: ResolvedConfig, opts: PurgeOptions): Promise<number> {
  const now = Date.now();
  const purged = await withStore(config, (store) => store.purge({ olderThanMs: opts.olderThan, statuses: opts.status, now }));
  const doc: PurgeJson = { purged, statuses: opts.status, olderThanMs: opts.olderThan, cutoff: new Date(now - opts.olderThan).toISOString() };
  if (opts.json) {
    printJson(doc);
  } else {
    print(
      `purged ${formatCount(purged)} ${opts.status.join(' and ')} file${purged === 1 ? '' : 's'} unchanged for more than ${formatSpan(opts.olderThan)}` +
        (purged > 0 ? ' (tombstones keep them from being handled again while they stay in a watched folder)' : ''),
    );
  }
  return 0;
}
