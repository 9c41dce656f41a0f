/**
 * `ckpt run`: assembles configuration, store, watcher and runner, and owns the process's
 * lifecycle (signals, --once, worker registration). Each part lives in src/daemon/:
 *
 *   FolderWatcher (watcher-slot) --(ready files, batched)--> discovery --> store.discover --> runner.wake()
 *   Runner --claim/complete/fail (token)--> store (opened by store/open-configured.ts)
 *   heartbeat (worker row), handler-watch (program gone: pause), once (--once bookkeeping),
 *   stop-request (signals), reload (SIGHUP), leftovers (a killed mover's files), folders (ownership),
 *   retention (scheduled purge of old history)
 *
 * SIGTERM/SIGINT: stop claiming, let running handlers finish within shutdownGraceMs, give the
 * rest back (no attempt counted), exit 0. A second signal gives them back at once.
 * SIGHUP: read the config file again and apply what can change live (src/daemon/reload.ts).
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { EXIT } from './cli/exit-codes.js';
import { ConfigError } from './config/errors.js';
import { routesByFileType } from './config/routes.js';
import type { ResolvedConfig } from './config/types.js';
import { Discovery } from './daemon/discovery.js';
import { foldersRefused, ownFolders } from './daemon/folders.js';
import { listenForHangup, type HangupListener } from './daemon/hangup.js';
import { HandlerWatch } from './daemon/handler-watch.js';
import { startHeartbeat, type Heartbeat } from './daemon/heartbeat.js';
import { cleanMoveLeftovers } from './daemon/leftovers.js';
import { OnceRun } from './daemon/once.js';
import { ConfigReloader } from './daemon/reload.js';
import { Retention } from './daemon/retention.js';
import { HandlerBuildError, HandlerSet, runnerSettingsOf } from './daemon/routes.js';
import { listenForStop, type StopRequest } from './daemon/stop-request.js';
import { WatcherSlot } from './daemon/watcher-slot.js';
import { healthFromMode, startHttpServer, withHandler, type HttpServer } from './ops/http.js';
import { Metrics } from './ops/metrics.js';
import { nativeAddon, reportNative } from './native/addon.js';
import { packageVersion } from './version.js';
import { notifyReady, notifyStopping } from './ops/notify.js';
import { anyHandlerProblemAtStart } from './run/handler-availability.js';
import { Runner } from './run/runner.js';
import { type DaemonLedger, openConfiguredStore } from './store/open-configured.js';
import { StoreUnavailableError } from './store/sqlite-errors.js';
import type { RetryPolicy } from './store/types.js';

/** Kept here for embedders and tests that import it from the daemon. */
export { BUSY_WAIT_SLICE_MS } from './store/open-configured.js';

export interface DaemonOptions {
  once: boolean;
  logger: Logger;
  workerId?: string;
  /** Tests and embedders stop the daemon with this instead of a signal. */
  signal?: AbortSignal;
  /** Listen to SIGTERM/SIGINT and SIGHUP (default true). */
  handleSignals?: boolean;
  /**
   * Reads the configuration again, the same way as for `config` (file, environment, flags):
   * called on SIGHUP. Without it, SIGHUP is logged and ignored.
   */
  reloadConfig?: () => ResolvedConfig;
  /** A SIGHUP listener installed earlier (by `ckpt run`, before the daemon's modules load). */
  hangup?: HangupListener;
}

/** Who this process is, for every part that logs or registers. */
interface Identity {
  workerId: string;
  host: string;
  log: Logger;
}

/** The running parts, assembled once the store is open. */
interface Parts {
  runner: Runner;
  watcher: WatcherSlot;
  reloader: ConfigReloader;
  handlerWatch: HandlerWatch;
  once: OnceRun | null;
  metrics: Metrics | null;
  /** Null with --once: a one-shot run has no schedule (cron setups run `ckpt purge`). */
  retention: Retention | null;
}

export async function runDaemon(config: ResolvedConfig, opts: DaemonOptions): Promise<number> {
  const own = opts.hangup === undefined && (opts.handleSignals ?? true) ? listenForHangup() : null;
  try {
    return await serve(config, opts, opts.hangup ?? own);
  } finally {
    own?.close();
  }
}

/** Start checks, store, parts, run until stopped (or, with --once, until all is settled), shut down. */
async function serve(config: ResolvedConfig, opts: DaemonOptions, hangup: HangupListener | null): Promise<number> {
  const host = os.hostname();
  const workerId = opts.workerId ?? config.workerId ?? `${host}:${process.pid}`;
  const id: Identity = { workerId, host, log: opts.logger.child({ workerId }) };
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    id.log.warn('running as root: handlers run as root too. Run ckpt as a dedicated user (see config/ckpt.service)');
  }
  const handlers = await handlerForStart(config, id.log);
  if (typeof handlers === 'number') return handlers;
  // One mutable copy shared by every store layer, so that a reload can change the policy in place.
  const retry: RetryPolicy = { ...config.retry };
  const ledger = await openLedger(config, id, retry);
  if (typeof ledger === 'number') return ledger;

  const parts = assemble(config, opts, id, ledger, handlers, retry);
  const startedAt = Date.now();
  const heartbeat = await startHeartbeat({ store: ledger.store, workerId, host, mode: ledger.mode, metrics: parts.metrics, log: id.log });
  const stop = listenForStop({
    log: id.log,
    handleSignals: opts.handleSignals ?? true,
    ...(opts.signal ? { signal: opts.signal } : {}),
    graceMs: () => parts.reloader.config.shutdownGraceMs,
    abortNow: () => parts.runner.abortNow(),
  });
  const http = await startListener(config, id.log, ledger, parts);
  await cleanMoveLeftovers(config, id.log);
  await start(config, opts, id.log, ledger, parts, startedAt);
  hangup?.attach(() => {
    // After the 'ckpt running' line: a SIGHUP kept while starting is applied now.
    if (opts.reloadConfig) parts.reloader.request();
    else id.log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: this process has no config file to read again');
  });
  const exitCode = await untilDone(parts, stop);
  await shutdown(id, ledger, parts, { heartbeat, stop, http });
  id.log.info({ exitCode }, 'ckpt stopped');
  return exitCode;
}

/** The configured handlers (top level and routes), or the exit code a start is refused with (one line naming the key). */
async function handlerForStart(config: ResolvedConfig, log: Logger): Promise<HandlerSet | number> {
  let handlers: HandlerSet;
  try {
    handlers = await HandlerSet.of(config);
  } catch (err) {
    // A configuration error: one line naming the file, the key and the cause, no loader stack.
    const key = err instanceof HandlerBuildError ? err.key : 'handler';
    log.fatal(`${config.configPath}: ${key}: ${(err as Error).message}`);
    return EXIT.CONFIG;
  }
  // A program that cannot be started would dead-letter every file after its retries.
  const problem = anyHandlerProblemAtStart(config);
  if (problem !== null) {
    log.fatal({ key: problem.key }, problem.line);
    return EXIT.CONFIG;
  }
  return handlers;
}

/** The store, once the watched folders are known to be this ledger's; or the exit code to stop with. */
async function openLedger(config: ResolvedConfig, id: Identity, retry: RetryPolicy): Promise<DaemonLedger | number> {
  const { log } = id;
  // SQLite: before the database is opened, so that a refused start creates no database file.
  if (config.database.kind === 'sqlite') {
    const refused = await ownFolders(config, log);
    if (refused !== null) return refused;
  }
  let ledger: DaemonLedger;
  try {
    ledger = await openConfiguredStore(config, { logger: log, workerId: id.workerId, retry });
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal(err.message);
      return EXIT.CONFIG;
    }
    log.fatal({ err }, `cannot open the database: ${(err as Error).message}`);
    return err instanceof StoreUnavailableError ? EXIT.UNAVAILABLE : EXIT.CONFIG;
  }
  // PostgreSQL's ledger identity is read from the (now migrated) schema.
  if (config.database.kind === 'postgres') {
    const refused = await ownFolders(config, log);
    if (refused !== null) {
      await ledger.store.close();
      return refused;
    }
  }
  return ledger;
}

/** Runner, watcher, reloader and their helpers, wired to each other and to the store. */
function assemble(config: ResolvedConfig, opts: DaemonOptions, id: Identity, ledger: DaemonLedger, handlers: HandlerSet, retry: RetryPolicy): Parts {
  const { store } = ledger;
  const { log, workerId } = id;
  const once = opts.once ? new OnceRun(store, log) : null;
  const metrics = config.http
    ? new Metrics({
        ledger: () => store.stats(Date.now()),
        folders: config.watch.map((w) => ({ folder: w.dir, fileType: w.fileType })),
        build: { version: packageVersion(), store: config.database.kind },
        ...(ledger.databasePath ? { databasePath: ledger.databasePath } : {}),
      })
    : null;
  const handlerWatch = new HandlerWatch(config, { logger: log, workerId, metrics, wake: () => runner.wake() });
  const discovery = new Discovery({ store, log, runner: () => runner, once });
  const runner: Runner = new Runner({
    store,
    ...runnerSettingsOf(config, handlers, handlerWatch),
    workerId,
    host: id.host,
    // The runner's lines carry path, attempt and workerId itself.
    logger: opts.logger,
    discoveredAt: (f) => discovery.takeDiscoveredAt(f),
    onOutcome: (file, outcome) => once?.outcome(file, outcome),
    ...(metrics ? { metrics } : {}),
    rediscover: (f) => {
      once?.reopened(f.fileUrl);
      return discovery.discover([f]);
    },
  });
  const watcher = new WatcherSlot(config, log, discovery.discover);
  const retention = opts.once ? null : new Retention({ store, log, config: config.retention });
  const reloader = new ConfigReloader(config, handlers, {
    load: () => opts.reloadConfig!(),
    logger: opts.logger,
    log,
    retry,
    runner,
    // The checks a start makes, so that a reload cannot bring in what a start would refuse.
    handlerProblem: (cfg) => anyHandlerProblemAtStart(cfg),
    handlerWatch,
    foldersProblem: async (cfg) => (config.database.kind === 'sqlite' ? await foldersRefused(cfg, log) : null),
    replaceWatcher: watcher.replace,
    applyRetention: (cfg) => retention?.reconfigure(cfg),
  });
  return { runner, watcher, reloader, handlerWatch, once, metrics, retention };
}

/** The metrics/health listener when configured; a port that cannot be had is logged, not fatal. */
async function startListener(config: ResolvedConfig, log: Logger, ledger: DaemonLedger, parts: Parts): Promise<HttpServer | null> {
  if (!config.http || !parts.metrics) return null;
  // Degraded still works, but needs a person (a lock left open, a corrupt file): 503 with why.
  const health = () => withHandler(healthFromMode(ledger.mode()), parts.handlerWatch.unavailable);
  try {
    return await startHttpServer({ host: config.http.host, port: config.http.port, metrics: parts.metrics, health, logger: log });
  } catch (err) {
    log.error({ err, port: config.http.port }, 'could not start the metrics/health listener; carrying on without it');
    return null;
  }
}

/** Claiming and watching begin; systemd hears "ready" once the first scan is done. */
async function start(config: ResolvedConfig, opts: DaemonOptions, log: Logger, ledger: DaemonLedger, parts: Parts, startedAt: number): Promise<void> {
  parts.runner.start();
  reportNative(log);
  try {
    await parts.watcher.start();
  } catch (err) {
    log.error({ err }, 'watcher failed to start');
  }
  parts.retention?.start();
  // systemd Type=notify: ready once the database is open and the first scan is done.
  void notifyReady(log);
  const routes = routesByFileType(config.watch).map(({ fileType, route }) => ({ fileType, concurrency: route.concurrency }));
  log.info(
    {
      folders: config.watch.map((w) => w.dir),
      database: ledger.location,
      concurrency: config.concurrency,
      // Each route's file type and cap (docs/routes.md); absent without routes.
      ...(routes.length > 0 ? { routes } : {}),
      once: opts.once,
      native: nativeAddon() !== null,
      startupMs: Date.now() - startedAt,
    },
    'ckpt running',
  );
}

/** Until a stop is asked for; with --once, or until every file handed on is settled (its exit code). */
async function untilDone(parts: Parts, stop: StopRequest): Promise<number> {
  const { once, reloader, watcher, runner } = parts;
  if (once === null) {
    await stop.stopped;
    return EXIT.OK;
  }
  const settled = once.untilAllSettled({ reloading: () => reloader.reloading, watcher: () => watcher.stats, runnerIdle: () => runner.idle });
  return (await Promise.race([settled, stop.stopped.then(() => null)])) ?? EXIT.OK;
}

/** Stop watching, let running handlers finish within the grace period, deregister, close. */
async function shutdown(id: Identity, ledger: DaemonLedger, parts: Parts, running: { heartbeat: Heartbeat; stop: StopRequest; http: HttpServer | null }): Promise<void> {
  void notifyStopping(id.log);
  parts.once?.finish();
  await parts.reloader.stop();
  await parts.retention?.stop();
  await parts.watcher.close();
  await parts.runner.stop(parts.reloader.config.shutdownGraceMs);
  parts.handlerWatch.close();
  running.heartbeat.stop();
  await ledger.store.removeWorker(id.workerId).catch(() => undefined);
  await running.http?.close().catch(() => undefined);
  await ledger.store.close();
  running.stop.close();
}
