/**
 * SIGHUP: read the config file again, with the same loader and layers as at start (defaults,
 * file, environment, flags), and swap in what can change without a restart. Which keys those
 * are is decided in src/config/reload-diff.ts.
 *
 *   SIGHUP -> load() --invalid--> one error line naming the key; the running config stays
 *                    --> diffConfig() -> new handler (if it cannot be built: refused, as above)
 *                        -> log level, retry policy, runner settings, retention windows, watcher
 *                           (rebuilt when the folders, their filters, stableMs or rescanMs changed)
 *                        -> one info line naming what changed; one warn line naming what
 *                           changed but waits for a restart
 *
 * Files already claimed finish under the settings they were claimed with (see Runner's
 * ClaimSettings); only new claims see the new ones.
 */
import type { Logger } from 'pino';
import { appliedConfig, diffConfig } from '../config/reload-diff.js';
import type { HandlerConfig, ResolvedConfig, RetentionConfig } from '../config/types.js';
import { createHandler, type Handler } from '../run/handler.js';
import type { Runner, RunnerSettings } from '../run/runner.js';
import type { RetryPolicy } from '../store/types.js';
import type { WatchFolder } from '../watch/watcher.js';

/** The handler a config describes (at start and on every reload that changes it). */
export function buildHandler(h: HandlerConfig): Promise<Handler> {
  return h.kind === 'command'
    ? createHandler({ command: h.command, timeoutMs: h.timeoutMs, killGraceMs: h.killGraceMs, cwd: h.cwd })
    : createHandler({ module: h.module, timeoutMs: h.timeoutMs });
}

export function runnerSettingsOf(config: ResolvedConfig, handler: Handler): RunnerSettings {
  return {
    handler,
    concurrency: config.concurrency,
    leaseMs: config.leaseMs,
    folders: config.watch.map((w) => ({ dir: w.dir, readyMarker: w.readyMarker, poll: w.poll })),
    onSuccess: config.onSuccess,
    onDead: config.onDead,
  };
}

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

/** Keys the watcher is built from: a change to any of them rebuilds it. */
const WATCHER_KEYS = ['watch', 'stableMs', 'rescanMs'];

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
  /** The line a start would exit 78 with for this config's handler program; null when it can run. */
  handlerProblem(config: ResolvedConfig): string | null;
  /** The handler as the runner should run it (watched for availability under `config`). */
  adoptHandler(config: ResolvedConfig, handler: Handler): Handler;
  /** The line refusing a watched folder that belongs to another ledger; null when none does. */
  foldersProblem(config: ResolvedConfig): Promise<string | null>;
  /** Closes the running watcher and starts one for `config` (a fresh scan of every folder). */
  replaceWatcher(config: ResolvedConfig): Promise<void>;
  /** The windows of the scheduled purge from the next pass on (null: off). */
  applyRetention(retention: RetentionConfig | null): void;
}

export class ConfigReloader {
  private running: ResolvedConfig;
  private handler: Handler;
  private busy: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    config: ResolvedConfig,
    handler: Handler,
    private readonly t: ReloadTargets,
  ) {
    this.running = config;
    this.handler = handler;
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
    let handler: Handler | null = null;
    const handlerRefused = changed.has('handler') ? this.t.handlerProblem(applied) : null;
    const foldersRefused = handlerRefused === null && changed.has('watch') ? await this.t.foldersProblem(applied) : null;
    if (handlerRefused !== null || foldersRefused !== null) {
      const key = handlerRefused !== null ? 'handler.command[0]' : 'watch';
      log.error({ key }, `reload refused, the running configuration stays: ${handlerRefused ?? foldersRefused}`);
      return;
    }
    if (changed.has('handler')) {
      try {
        handler = await buildHandler(applied.handler);
      } catch (err) {
        log.error({ key: 'handler' }, `reload refused, the running configuration stays: ${next.configPath}: handler: ${(err as Error).message}`);
        return;
      }
    }
    if (this.stopped) return;
    // Until the summary lines are out: the more verbose of the two levels, so that going from
    // info to warn still says what changed (the new level applies right after).
    if (changed.has('log.level')) this.t.logger.level = moreVerbose(this.t.logger, this.running.log.level, applied.log.level);
    if (changed.has('retry')) Object.assign(this.t.retry, applied.retry);
    if (handler) this.handler = this.t.adoptHandler(applied, handler);
    this.t.runner.reconfigure(runnerSettingsOf(applied, this.handler));
    if (changed.has('retention')) this.t.applyRetention(applied.retention);
    if (WATCHER_KEYS.some((k) => changed.has(k))) await this.t.replaceWatcher(applied);
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
