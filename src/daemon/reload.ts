/**
 * SIGHUP: read the config file again, with the same loader and layers as at start (defaults,
 * file, environment, flags), and swap in what can change without a restart. Which keys those
 * are is decided in src/config/reload-diff.ts.
 *
 *   SIGHUP -> load() --invalid--> one error line naming the key; the running config stays
 *                    --> diffConfig() -> new handlers, the top level's and the routes' (one that
 *                           cannot be built or run: refused, as above)
 *                        -> log level, retry policy, runner settings (routes included), retention
 *                           windows, watcher (rebuilt when the folders, their filters, stableMs or
 *                           rescanMs changed; not for a change of routes alone)
 *                        -> one info line naming what changed; one warn line naming what
 *                           changed but waits for a restart
 *
 * Files already claimed finish under the settings they were claimed with (see Runner's
 * ClaimSettings); only new claims see the new ones.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { appliedConfig, diffConfig } from '../config/reload-diff.js';
import type { ResolvedConfig, RetentionConfig } from '../config/types.js';
import type { Runner } from '../run/runner.js';
import type { RetryPolicy } from '../store/types.js';
import type { WatchFolder } from '../watch/watcher.js';
import type { HandlerWatch } from './handler-watch.js';
import { HandlerBuildError, HandlerSet, runnerSettingsOf } from './routes.js';

export function watchFoldersOf(config: ResolvedConfig): WatchFolder[] {
  return config.watch.map((w) => ({
    dir: w.dir,
    include: w.include,
    exclude: w.exclude,
    fileType: w.fileType,
    poll: w.poll,
    readyMarker: w.readyMarker,
    recursive: w.recursive,
    readiness: w.readiness,
  }));
}

/** The watcher is built from these: a change to any of them rebuilds it (routes excepted). */
function watcherChanged(a: ResolvedConfig, b: ResolvedConfig): boolean {
  const folders = (c: ResolvedConfig) => c.watch.map(({ route: _route, ...w }) => w);
  return a.stableMs !== b.stableMs || a.rescanMs !== b.rescanMs || !isDeepStrictEqual(folders(a), folders(b));
}

export interface ReloadTargets {
  /** Reads and checks the config file again; throws ConfigError as at start. */
  load(): ResolvedConfig;
  /** The root logger: its children follow its level. */
  logger: Logger;
  /** Where the reload's own lines go. */
  log: Logger;
  /** The policy object every store layer was opened with; updated in place. */
  retry: RetryPolicy;
  runner: Runner;
  /** The key and line a start would exit 78 with for a handler program of this config; null when all can run. */
  handlerProblem(config: ResolvedConfig): { key: string; line: string } | null;
  /** Watches the handler programs (adopt: those of a reloaded config). */
  handlerWatch: Pick<HandlerWatch, 'adopt' | 'gated' | 'pausedFor'>;
  /** The line refusing a watched folder that belongs to another ledger; null when none does. */
  foldersProblem(config: ResolvedConfig): Promise<string | null>;
  /** Closes the running watcher and starts one for `config` (a fresh scan of every folder). */
  replaceWatcher(config: ResolvedConfig): Promise<void>;
  /** The windows of the scheduled purge from the next pass on (null: off). */
  applyRetention(retention: RetentionConfig | null): void;
}

export class ConfigReloader {
  private running: ResolvedConfig;
  private handlers: HandlerSet;
  private busy: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    config: ResolvedConfig,
    handlers: HandlerSet,
    private readonly t: ReloadTargets,
  ) {
    this.running = config;
    this.handlers = handlers;
  }

  /** The configuration in effect: the last one applied (restart-only keys as at start). */
  get config(): ResolvedConfig {
    return this.running;
  }

  /** A reload is being applied (the watcher may be between two instances). */
  get reloading(): boolean {
    return this.busy !== null;
  }

  /** One SIGHUP. Reloads run one at a time; signals during one make one more run after it. */
  request(): void {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = this.loop().finally(() => (this.busy = null));
  }

  /** Shutdown: no more reloads; waits for the one in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.busy;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.reloadOnce();
      } catch (err) {
        this.t.log.error({ err }, 'reload failed; the running configuration stays');
      }
    } while (this.again && !this.stopped);
  }

  private async reloadOnce(): Promise<void> {
    const { log } = this.t;
    let next: ResolvedConfig;
    try {
      next = this.t.load();
    } catch (err) {
      const e = err as Error & { key?: string };
      log.error({ key: e.key }, `reload refused, the running configuration stays: ${e.message}`);
      return;
    }
    const diff = diffConfig(this.running, next);
    const applied = appliedConfig(this.running, next, diff.restart);
    const changed = new Set(diff.live);
    // Routes live in `watch`: a change there may bring new handlers too.
    const handlersChanged = changed.has('handler') || changed.has('watch');
    const handlerRefused = handlersChanged ? this.t.handlerProblem(applied) : null;
    const foldersRefused = handlerRefused === null && changed.has('watch') ? await this.t.foldersProblem(applied) : null;
    if (handlerRefused !== null || foldersRefused !== null) {
      const key = handlerRefused !== null ? handlerRefused.key : 'watch';
      log.error({ key }, `reload refused, the running configuration stays: ${handlerRefused?.line ?? foldersRefused}`);
      return;
    }
    let handlers = this.handlers;
    if (handlersChanged) {
      try {
        handlers = await HandlerSet.of(applied, this.handlers);
      } catch (err) {
        const key = err instanceof HandlerBuildError ? err.key : 'handler';
        log.error({ key }, `reload refused, the running configuration stays: ${next.configPath}: ${key}: ${(err as Error).message}`);
        return;
      }
    }
    if (this.stopped) return;
    // Until the summary lines are out: the more verbose of the two levels, so that going from
    // info to warn still says what changed (the new level applies right after).
    if (changed.has('log.level')) this.t.logger.level = moreVerbose(this.t.logger, this.running.log.level, applied.log.level);
    if (changed.has('retry')) Object.assign(this.t.retry, applied.retry);
    if (handlersChanged) this.t.handlerWatch.adopt(applied);
    this.handlers = handlers;
    this.t.runner.reconfigure(runnerSettingsOf(applied, handlers, this.t.handlerWatch));
    if (changed.has('retention')) this.t.applyRetention(applied.retention);
    if (watcherChanged(this.running, applied)) await this.t.replaceWatcher(applied);
    this.running = applied;
    log.info({ changed: diff.live }, diff.live.length > 0 ? `configuration reloaded (changed: ${diff.live.join(', ')})` : 'configuration reloaded (nothing changed)');
    if (diff.restart.length > 0) log.warn({ keys: diff.restart }, `not applied until a restart: ${diff.restart.join(', ')}`);
    this.t.logger.level = applied.log.level;
  }
}

function moreVerbose(logger: Logger, a: string, b: string): string {
  const rank = (l: string) => (l === 'silent' ? Infinity : (logger.levels.values[l] ?? Infinity));
  return rank(a) <= rank(b) ? a : b;
}
