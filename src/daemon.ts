/**
 * `ckpt run`: wires configuration, store, watcher and runner together, and owns the process's
 * lifecycle (signals, --once, worker registration).
 *
 *   FolderWatcher --(ready files, batched)--> store.discover --> runner.wake()
 *   Runner --claim/complete/fail (token)--> store
 *
 * SIGTERM/SIGINT: stop claiming, let running handlers finish within shutdownGraceMs, give the
 * rest back (no attempt counted), exit 0. A second signal gives them back at once.
 * SIGHUP: read the config file again and apply what can change live (src/daemon/reload.ts).
 */
import os from 'node:os';
import type { Logger } from 'pino';
import { EXIT } from './cli/exit-codes.js';
import { ConfigError } from './config/errors.js';
import type { ResolvedConfig } from './config/types.js';
import { listenForHangup, type HangupListener } from './daemon/hangup.js';
import { buildHandler, ConfigReloader, runnerSettingsOf, watchFoldersOf } from './daemon/reload.js';
import { healthFromMode, startHttpServer, withHandler, type HttpServer } from './ops/http.js';
import { Metrics } from './ops/metrics.js';
import { notifyReady, notifyStopping } from './ops/notify.js';
import { createProgress, type Progress } from './ops/progress.js';
import { cleanStaleMoveTemps, removeStaleMoveTemps } from './run/after-action.js';
import type { Handler } from './run/handler.js';
import { availabilityFor, gateHandler, handlerProblemAtStart, type HandlerAvailability } from './run/handler-availability.js';
import { stillAsFound } from './run/recheck-discovered.js';
import { Runner, type OutcomeKind } from './run/runner.js';
import { type DaemonLedger, openConfiguredStore } from './store/open-configured.js';
import { fallbackDirForConfig } from './store/open-store.js';
import { StoreUnavailableError } from './store/sqlite-errors.js';
import type { DiscoveredFile, RetryPolicy } from './store/types.js';
import { claimFolders, ledgerOf } from './watch/folder-ownership.js';
import { FolderWatcher } from './watch/watcher.js';

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

/** How often a process records that it is alive (`ckpt status` lists live workers). */
const WORKER_HEARTBEAT_MS = 5_000;
/** Discovery-to-claim timestamps kept for the latency metric; bounded so memory does not grow per file. */
const MAX_DISCOVERY_TIMES = 50_000;

/** Kept here for embedders and tests that import it from the daemon. */
export { BUSY_WAIT_SLICE_MS } from './store/open-configured.js';

export async function runDaemon(config: ResolvedConfig, opts: DaemonOptions): Promise<number> {
  const own = opts.hangup === undefined && (opts.handleSignals ?? true) ? listenForHangup() : null;
  try {
    return await serve(config, opts, opts.hangup ?? own);
  } finally {
    own?.close();
  }
}

async function serve(config: ResolvedConfig, opts: DaemonOptions, hangup: HangupListener | null): Promise<number> {
  const host = os.hostname();
  const workerId = opts.workerId ?? config.workerId ?? `${host}:${process.pid}`;
  const log = opts.logger.child({ workerId });
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    log.warn('running as root: handlers run as root too. Run ckpt as a dedicated user (see config/ckpt.service)');
  }

  let handler: Handler;
  try {
    handler = await buildHandler(config.handler);
  } catch (err) {
    // A configuration error: one line naming the file, the key and the cause, no loader stack.
    log.fatal(`${config.configPath}: handler: ${(err as Error).message}`);
    return EXIT.CONFIG;
  }
  // A program that cannot be started would dead-letter every file after its retries.
  const handlerProblem = handlerProblemAtStart(config);
  if (handlerProblem !== null) {
    log.fatal({ key: 'handler.command[0]' }, handlerProblem);
    return EXIT.CONFIG;
  }

  // SQLite: before the database is opened, so that a refused start creates no database file.
  if (config.database.kind === 'sqlite') {
    const refused = await ownFolders(config, log);
    if (refused !== null) return refused;
  }

  // One mutable copy shared by every store layer, so that a reload can change the policy in place.
  const retry: RetryPolicy = { ...config.retry };
  let ledger: DaemonLedger;
  try {
    ledger = await openConfiguredStore(config, { logger: log, workerId, retry });
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal(err.message);
      return EXIT.CONFIG;
    }
    log.fatal({ err }, `cannot open the database: ${(err as Error).message}`);
    return err instanceof StoreUnavailableError ? EXIT.UNAVAILABLE : EXIT.CONFIG;
  }
  const { store, mode } = ledger;
  const dbPath = ledger.databasePath;
  // PostgreSQL's ledger identity is read from the (now migrated) schema.
  if (config.database.kind === 'postgres') {
    const refused = await ownFolders(config, log);
    if (refused !== null) {
      await store.close();
      return refused;
    }
  }

  const discoveredAt = new Map<string, number>();
  const handed = opts.once ? new Set<string>() : null;
  /** --once: how each file handed on ended (purged: a tombstone keeps it from running again). */
  const settled = new Map<string, 'completed' | 'dead' | 'purged'>();
  /** Purged files are not run: the bar counts the others. */
  let purgedSeen = 0;
  // --once shows progress: a bar on a terminal, log lines otherwise.
  const progress: Progress | null = opts.once ? createProgress({ total: 0, tty: process.stderr.isTTY === true, logger: log }) : null;
  const metrics = config.http ? new Metrics({ counts: () => store.counts(), ...(dbPath ? { databasePath: dbPath } : {}) }) : null;
  // The handler's program gone while running (an upgrade): pause claiming, keep the retries.
  // A reload that changes the handler replaces the monitor with one for the new program.
  const watchAvailability = (cfg: ResolvedConfig): HandlerAvailability | null =>
    availabilityFor(cfg, {
      logger: log,
      workerId,
      stateDir: fallbackDirForConfig(cfg.database, cfg.fallbackDir),
      fileMode: cfg.fileMode,
      metrics,
      wake: () => runner.wake(),
    });
  let availability = watchAvailability(config);
  const gated = (h: Handler): Handler => (availability ? gateHandler(h, availability) : h);

  const runner = new Runner({
    store,
    ...runnerSettingsOf(config, gated(handler)),
    paused: () => availability?.unavailable != null,
    workerId,
    host,
    // The runner's lines carry path, attempt and workerId itself.
    logger: opts.logger,
    discoveredAt: (f) => {
      const t = discoveredAt.get(f);
      if (t !== undefined) discoveredAt.delete(f);
      return t;
    },
    onOutcome: (file: string, outcome: OutcomeKind) => {
      if (handed && (outcome === 'completed' || outcome === 'dead')) {
        settled.set(file, outcome);
        // Claimed without a sighting here (a requeued file, say): it still counts in the summary.
        if (!handed.has(file)) progress?.setTotal(handed.add(file).size - purgedSeen);
      }
      progress?.tick(outcome);
    },
    ...(metrics ? { metrics } : {}),
    rediscover: (f) => {
      // A new version of a settled file: --once must wait for it again.
      settled.delete(f.fileUrl);
      return discover([f]);
    },
  });

  async function discover(found: DiscoveredFile[]): Promise<void> {
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
      handed?.add(f.fileUrl);
      if (discoveredAt.size < MAX_DISCOVERY_TIMES) discoveredAt.set(f.fileUrl, now);
    }
    if (handed) progress?.setTotal(handed.size - purgedSeen);
    if (res.inserted + res.reversioned > 0) runner.wake();
    for (const u of res.unfinished ?? []) await runner.finishAfterAction(u);
    log.debug({ ...res, files: files.length }, 'discovered');
  }

  const makeWatcher = (cfg: ResolvedConfig) =>
    new FolderWatcher({
      folders: watchFoldersOf(cfg),
      stableMs: cfg.stableMs,
      rescanMs: cfg.rescanMs > 0 ? cfg.rescanMs : 2_147_483_647,
      logger: log,
      sink: discover,
    });
  let watcher = makeWatcher(config);
  const reloader = new ConfigReloader(config, gated(handler), {
    load: () => opts.reloadConfig!(),
    logger: opts.logger,
    log,
    retry,
    runner,
    // The checks a start makes, so that a reload cannot bring in what a start would refuse.
    handlerProblem: (cfg) => handlerProblemAtStart(cfg),
    adoptHandler: (cfg, h) => {
      availability?.close();
      availability = watchAvailability(cfg);
      return gated(h);
    },
    foldersProblem: async (cfg) => (config.database.kind === 'sqlite' ? await foldersRefused(cfg, log) : null),
    // Closed before the new one starts: no double watches; its first scan finds what the gap missed.
    replaceWatcher: async (cfg) => {
      await watcher.close().catch((err: unknown) => log.error({ err }, 'error while closing the watcher'));
      watcher = makeWatcher(cfg);
      await watcher.start().catch((err: unknown) => log.error({ err }, 'watcher failed to start'));
    },
  });

  const startedAt = Date.now();
  const touch = () => {
    const m = mode();
    metrics?.setDegraded(m.mode === 'degraded');
    return store
      .touchWorker({ workerId, host, pid: process.pid, mode: m.mode, modeSince: m.since, modeReason: m.reason }, Date.now())
      .catch((err: unknown) => log.debug({ err }, 'could not record worker heartbeat'));
  };
  await touch();
  const workerTimer = setInterval(() => void touch(), WORKER_HEARTBEAT_MS);
  workerTimer.unref();

  // --- lifecycle -------------------------------------------------------------------------
  let stopRequested = false;
  let resolveStop!: () => void;
  const stopped = new Promise<void>((r) => (resolveStop = r));
  const onSignal = (sig: NodeJS.Signals) => {
    if (!stopRequested) {
      stopRequested = true;
      log.info({ signal: sig, graceMs: reloader.config.shutdownGraceMs }, 'stopping: no new claims; running handlers get the grace period');
      resolveStop();
    } else {
      log.warn({ signal: sig }, 'second signal: stopping handlers now and giving their files back');
      runner.abortNow();
    }
  };
  const handleSignals = opts.handleSignals ?? true;
  if (handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  opts.signal?.addEventListener('abort', () => onSignal('SIGTERM'), { once: true });

  let http: HttpServer | null = null;
  if (config.http && metrics) {
    // Degraded still works, but needs a person (a lock left open, a corrupt file): 503 with why.
    const health = () => withHandler(healthFromMode(mode()), availability?.unavailable ?? null);
    try {
      http = await startHttpServer({ host: config.http.host, port: config.http.port, metrics, health, logger: log });
    } catch (err) {
      log.error({ err, port: config.http.port }, 'could not start the metrics/health listener; carrying on without it');
    }
  }

  // Partial copies left by a mover that was killed mid-move (its file is moved again below).
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

  runner.start();
  try {
    await watcher.start();
  } catch (err) {
    log.error({ err }, 'watcher failed to start');
  }
  // systemd Type=notify: ready once the database is open and the first scan is done.
  void notifyReady(log);
  log.info(
    { folders: config.watch.map((w) => w.dir), database: ledger.location, concurrency: config.concurrency, once: opts.once, startupMs: Date.now() - startedAt },
    'ckpt running',
  );
  // After that line: a SIGHUP kept while starting is applied now.
  hangup?.attach(() => {
    if (opts.reloadConfig) reloader.request();
    else log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: this process has no config file to read again');
  });

  let exitCode: number = EXIT.OK;
  if (handed) {
    const outcome = await Promise.race([waitUntilAllSettled(), stopped.then(() => null)]);
    if (outcome !== null) exitCode = outcome;
  } else {
    await stopped;
  }

  // --- shutdown ----------------------------------------------------------------------------
  void notifyStopping(log);
  progress?.finish();
  await reloader.stop();
  await watcher.close().catch((err: unknown) => log.error({ err }, 'error while closing the watcher'));
  await runner.stop(reloader.config.shutdownGraceMs);
  availability?.close();
  clearInterval(workerTimer);
  await store.removeWorker(workerId).catch(() => undefined);
  await http?.close().catch(() => undefined);
  await store.close();
  if (handleSignals) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  log.info({ exitCode }, 'ckpt stopped');
  return exitCode;

  /**
   * A file with no row was purged (its tombstone kept discovery from adding one): it will not
   * run, so it is settled too, or --once would wait for it for ever.
   */
  async function settledAs(f: string): Promise<'completed' | 'dead' | 'purged' | null> {
    const rec = await store.get(f).catch(() => null);
    if (rec) return rec.status === 'completed' || rec.status === 'dead' ? rec.status : null;
    return (await store.tombstone(f).catch(() => null)) ? 'purged' : null;
  }

  /** --once: every file handed on since start is completed, dead or purged (retries waited out). */
  async function waitUntilAllSettled(): Promise<number> {
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      if (reloader.reloading) continue;
      const w = watcher.stats;
      if (w.tracked > 0 || w.queued > 0 || !runner.idle) continue;
      let open = 0;
      for (const f of handed!) {
        if (settled.has(f)) continue;
        const s = await settledAs(f);
        if (s === null) open++;
        else settled.set(f, s);
        // Not run, so not in the bar's count either (it stood at 0 of N for ever).
        if (s === 'purged') progress?.setTotal(handed!.size - ++purgedSeen);
      }
      if (open === 0) {
        const n = { completed: 0, dead: 0, purged: 0 };
        for (const s of settled.values()) n[s]++;
        log.info({ files: handed!.size, ...n }, '--once: every file is settled');
        if (n.purged > 0) log.info({ purged: n.purged }, 'purged files still in the folder were not run again (a tombstone holds each; `ckpt retry FILE` lets one run)');
        return n.dead > 0 ? EXIT.DEAD_FILES : EXIT.OK;
      }
    }
  }
}

/**
 * A folder belongs to one ledger: a second database on it would run every file again
 * (watch/folder-ownership.ts). The exit code to stop with, or null to go on.
 */
async function ownFolders(config: ResolvedConfig, log: Logger): Promise<number | null> {
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
async function foldersRefused(config: ResolvedConfig, log: Logger): Promise<string | null> {
  const owned = claimFolders(config.watch, await ledgerOf(config), { configPath: config.configPath, warn: (f, m) => log.warn(f, m) });
  return owned.ok ? null : owned.line;
}
