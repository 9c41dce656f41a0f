/**
 * The folder watcher, which a reload may rebuild: the old one is closed before the new one
 * starts (no double watches), and the new one's first scan finds what the gap missed.
 */
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/types.js';
import type { DiscoveredFile } from '../store/types.js';
import { FolderWatcher, type WatcherStats } from '../watch/watcher.js';
import { watchFoldersOf } from './reload.js';

export class WatcherSlot {
  private watcher: FolderWatcher;

  constructor(
    config: ResolvedConfig,
    private readonly log: Logger,
    private readonly sink: (files: DiscoveredFile[]) => Promise<void>,
  ) {
    this.watcher = this.make(config);
  }

  get stats(): WatcherStats {
    return this.watcher.stats;
  }

  start(): Promise<void> {
    return this.watcher.start();
  }

  /** Closes the watcher; an error is logged, not thrown. */
  async close(): Promise<void> {
    await this.watcher.close().catch((err: unknown) => this.log.error({ err }, 'error while closing the watcher'));
  }

  readonly replace = async (config: ResolvedConfig): Promise<void> => {
    await this.close();
    this.watcher = this.make(config);
    await this.watcher.start().catch((err: unknown) => this.log.error({ err }, 'watcher failed to start'));
  };

  private make(config: ResolvedConfig): FolderWatcher {
    return new FolderWatcher({
      folders: watchFoldersOf(config),
      stableMs: config.stableMs,
      rescanMs: config.rescanMs > 0 ? config.rescanMs : 2_147_483_647,
      logger: this.log,
      sink: this.sink,
    });
  }
}
