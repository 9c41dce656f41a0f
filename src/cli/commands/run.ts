/**
 * `ckpt run [--once]`: load the config, make the logger, hand over to the daemon
 * (src/daemon.ts), and exit with the code it returns.
 */
import tty from 'node:tty';
import type { ConfigOverrides, ResolvedConfig } from '../../config/types.js';
import type { DaemonOptions } from '../../daemon.js';
import { listenForHangup } from '../../daemon/hangup.js';
import { createLogger, flushLogger, type Logger } from '../../log.js';
import { aboveProgress } from '../../ops/progress.js';

export interface RunOptions {
  once?: boolean;
  logLevel?: string;
  logFormat?: string;
  concurrency?: string;
  workerId?: string;
  httpPort?: string;
}

/** The command-line layer of the configuration (checked by the config module like the file's keys). */
export function runOverrides(opts: RunOptions): ConfigOverrides {
  const o: ConfigOverrides = {};
  if (opts.logLevel !== undefined) o.logLevel = opts.logLevel;
  if (opts.logFormat !== undefined) o.logFormat = opts.logFormat;
  if (opts.concurrency !== undefined) o.concurrency = opts.concurrency;
  if (opts.workerId !== undefined) o.workerId = opts.workerId;
  if (opts.httpPort !== undefined) o.httpPort = opts.httpPort;
  return o;
}

/**
 * `--once` on a terminal draws a progress bar on stderr (src/ops/progress.ts); log lines on the
 * same terminal then go through aboveProgress() so they appear above the bar instead of being
 * glued to its end. (That writer is a plain stream to the logger, so those lines are pretty
 * but not coloured.) Everywhere else: the configured format on stdout.
 */
export function makeLogger(config: ResolvedConfig, once: boolean, isatty: (fd: number) => boolean = tty.isatty, onTerminalGone?: () => void): Logger {
  const barOnTerminal = once && isatty(2) && isatty(1) && config.log.format !== 'json';
  if (barOnTerminal) return createLogger({ level: config.log.level, format: 'pretty', destination: aboveProgress(1) as unknown as NodeJS.WritableStream });
  return createLogger({ level: config.log.level, format: config.log.format, ...(onTerminalGone ? { onTerminalGone } : {}) });
}

/**
 * `reload`: loads the configuration again the way `config` was loaded (same file, environment
 * and flags); the daemon calls it on SIGHUP.
 */
export async function runCommand(config: ResolvedConfig, opts: RunOptions, reload?: () => ResolvedConfig): Promise<number> {
  // Before the daemon's modules load (the longest part of a start): a SIGHUP meanwhile is kept.
  const hangup = listenForHangup();
  // Started on a terminal that is closed since (its SIGHUP reloaded, the next line failed):
  // stop as on SIGTERM, drained and deregistered, rather than die on the write or run unseen.
  const terminalGone = new AbortController();
  const logger = makeLogger(config, opts.once ?? false, tty.isatty, () => terminalGone.abort());
  // Loaded here, not at the top: `ckpt status` should not pay for chokidar and the runner.
  const { runDaemon } = await import('../../daemon.js');
  const daemonOpts: DaemonOptions = { once: opts.once ?? false, logger, hangup, signal: terminalGone.signal };
  if (reload) daemonOpts.reloadConfig = reload;
  if (config.workerId !== undefined) daemonOpts.workerId = config.workerId;
  try {
    return await runDaemon(config, daemonOpts);
  } finally {
    hangup.close();
    flushLogger(logger);
  }
}
