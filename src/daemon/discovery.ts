/**
 * The watcher's sink: files found ready go to the store (still as they were found), the runner
 * is woken for new ones, and the discovery time of each is kept for the latency metric.
 */
import type { Logger } from 'pino';
import { stillAsFound } from '../run/recheck-discovered.js';
import type { Runner } from '../run/runner.js';
import type { CheckpointStore, DiscoveredFile } from '../store/types.js';
import type { OnceRun } from './once.js';

/** Discovery-to-claim timestamps kept for the latency metric; bounded so memory does not grow per file. */
const MAX_DISCOVERY_TIMES = 50_000;

export interface DiscoveryDeps {
  store: CheckpointStore;
  log: Logger;
  /** Read when files arrive (the runner is built after this part). */
  runner: () => Runner;
  once: OnceRun | null;
}

export class Discovery {
  private readonly discoveredAt = new Map<string, number>();

  constructor(private readonly deps: DiscoveryDeps) {}

  /** When `file` was handed on; forgotten once asked (the runner asks when it claims the file). */
  takeDiscoveredAt(file: string): number | undefined {
    const t = this.discoveredAt.get(file);
    if (t !== undefined) this.discoveredAt.delete(file);
    return t;
  }

  readonly discover = async (found: DiscoveredFile[]): Promise<void> => {
    const { store, log, once } = this.deps;
    // Only files still as they were found stable: a stale fingerprint would make a new version
    // of a file another daemon already handled and moved (see stillAsFound). The store asks
    // inside its write, so the look comes after any wait on the lock; one lstat per file per try.
    const now = Date.now();
    const stale = new Set<string>();
    const stillThere = (f: DiscoveredFile): boolean => {
      const fresh = stillAsFound([f]).fresh.length === 1;
      if (fresh) stale.delete(f.fileUrl);
      else stale.add(f.fileUrl);
      return fresh;
    };
    const res = await store.discover(found, now, { stillThere });
    const files = stale.size === 0 ? found : found.filter((f) => !stale.has(f.fileUrl));
    if (stale.size > 0) log.debug({ files: stale.size, path: [...stale][0] }, 'changed or gone since found ready: left to the watcher');
    for (const f of files) {
      if (this.discoveredAt.size < MAX_DISCOVERY_TIMES) this.discoveredAt.set(f.fileUrl, now);
    }
    once?.handedOn(files.map((f) => f.fileUrl));
    const runner = this.deps.runner();
    if (res.inserted + res.reversioned > 0) runner.wake();
    for (const u of res.unfinished ?? []) await runner.finishAfterAction(u);
    log.debug({ ...res, files: files.length }, 'discovered');
  };
}
