/**
 * Running the user's handler on one file: createHandler(), which picks the command handler (a
 * program run per file) or the module handler (an ES module loaded once) from the
 * configuration. The types they share are in handler-types.ts (re-exported here).
 *
 * A Handler never rejects: every way a run can go wrong (non-zero exit, signal, timeout, lost
 * lease, a throw, a program that cannot be started) comes back as an outcome, so the worker
 * loop has exactly one path to record it.
 */
import { createCommandHandler, type CommandHandlerConfig } from './command-handler.js';
import type { Handler } from './handler-types.js';
import { loadModuleHandler, type ModuleHandlerConfig } from './module-handler.js';

export type { RunStats } from './stats-line.js';
export type { FailureKind, Handler, HandlerContext, HandlerOutcome } from './handler-types.js';
export type { CommandHandlerConfig } from './command-handler.js';
export type { ModuleHandlerConfig } from './module-handler.js';

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
