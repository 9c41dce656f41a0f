/**
 * Running the user's handler on one file: the types shared by the command handler (a program
 * run per file) and the module handler (an ES module loaded once), and createHandler(), which
 * picks one from the configuration.
 *
 * A Handler never rejects: every way a run can go wrong (non-zero exit, signal, timeout, lost
 * lease, a throw, a program that cannot be started) comes back as an outcome, so the worker
 * loop has exactly one path to record it.
 */
import type { Logger } from 'pino';
import { createCommandHandler, type CommandHandlerConfig } from './command-handler.js';
import { loadModuleHandler, type ModuleHandlerConfig } from './module-handler.js';
import type { RunStats } from './stats-line.js';

export type { RunStats } from './stats-line.js';
export type { CommandHandlerConfig } from './command-handler.js';
export type { ModuleHandlerConfig } from './module-handler.js';

export interface HandlerContext {
  /** Absolute path of the file (the store's primary key). */
  fileUrl: string;
  fileType: string;
  /** The file's version in the store (a new content is a new version); part of the idempotency key. */
  version: number;
  /** 1-based run counter for this version of the file. */
  attempt: number;
  workerId: string;
  /** Stable for one version of one file: a sink can de-duplicate on it. */
  idempotencyKey: string;
  claimToken: string;
  /** Fires when the lease is lost or the daemon stops. */
  signal: AbortSignal;
  /** Child logger already carrying path/attempt/workerId. */
  logger: Logger;
  /**
   * Command handler only: the program is not started after this time (epoch ms, the lease the
   * claim holds when the run begins); the outcome is then a `spawn` failure.
   */
  startBy?: number;
  /** Command handler only: called with the process-group id right after the spawn. */
  onSpawn?: (pid: number) => void;
}

/**
 * `unavailable`: the program could not be started because it is gone (handler-availability.ts);
 * not the file's fault, so the claim is given back without counting an attempt.
 */
export type FailureKind = 'exit' | 'signal' | 'timeout' | 'aborted' | 'threw' | 'spawn' | 'unavailable';

export type HandlerOutcome =
  | { ok: true; stats: RunStats | null; durationMs: number }
  | { ok: false; permanent: boolean; kind: FailureKind; error: string; durationMs: number };

/** Runs the handler on one file. Never rejects: every failure is an outcome. */
export type Handler = (ctx: HandlerContext) => Promise<HandlerOutcome>;

export type HandlerConfig = CommandHandlerConfig | ModuleHandlerConfig;

/**
 * Builds the handler described by `cfg`. Throws (the daemon turns it into exit 78) when the
 * configuration cannot work at all: an empty command, a module that is missing, does not load,
 * or has no default function export.
 *
 * `env` is the environment a command handler inherits (default: this process's), before the
 * CKPT_* variables are added.
 */
export async function createHandler(cfg: HandlerConfig, env: NodeJS.ProcessEnv = process.env): Promise<Handler> {
  if ('command' in cfg) return createCommandHandler(cfg, env);
  if ('module' in cfg) return loadModuleHandler(cfg);
  throw new Error('handler config needs either "command" (an argv array) or "module" (a path to an ES module)');
}
