/**
 * The handlers of a configuration and the runner settings built from them: the top-level
 * handler, and one per route (docs/routes.md), each gated by the availability of its own
 * program. A handler is built once per distinct handler config; a reload builds only the new ones.
 */
import { isDeepStrictEqual } from 'node:util';
import { allHandlers, routesByFileType } from '../config/routes.js';
import type { HandlerConfig, ResolvedConfig } from '../config/types.js';
import { createHandler, type Handler } from '../run/handler.js';
import type { RunnerSettings } from '../run/runner.js';
import type { HandlerWatch } from './handler-watch.js';

/** The handler a handler config describes. */
export function buildHandler(h: HandlerConfig): Promise<Handler> {
  return h.kind === 'command'
    ? createHandler({ command: h.command, timeoutMs: h.timeoutMs, killGraceMs: h.killGraceMs, cwd: h.cwd })
    : createHandler({ module: h.module, timeoutMs: h.timeoutMs });
}

/** A handler that could not be built, with the key of its config (`handler`, `watch[1].handler`). */
export class HandlerBuildError extends Error {
  constructor(
    readonly key: string,
    cause: unknown,
  ) {
    super((cause as Error).message ?? String(cause), { cause });
  }
}

/** Built handlers, one per distinct handler config. */
export class HandlerSet {
  private constructor(private readonly built: readonly { config: HandlerConfig; handler: Handler }[]) {}

  /**
   * Every handler `config` names; the ones `reuse` already holds are not built again (a module
   * would be imported again for nothing). Throws HandlerBuildError naming the first that fails.
   */
  static async of(config: Pick<ResolvedConfig, 'handler' | 'watch'>, reuse?: HandlerSet): Promise<HandlerSet> {
    const built: { config: HandlerConfig; handler: Handler }[] = [];
    for (const { key, handler } of allHandlers(config)) {
      if (built.some((b) => isDeepStrictEqual(b.config, handler))) continue;
      const have = reuse?.find(handler);
      try {
        built.push({ config: handler, handler: have ?? (await buildHandler(handler)) });
      } catch (err) {
        throw new HandlerBuildError(key, err);
      }
    }
    return new HandlerSet(built);
  }

  find(config: HandlerConfig): Handler | undefined {
    return this.built.find((b) => isDeepStrictEqual(b.config, config))?.handler;
  }

  get(config: HandlerConfig): Handler {
    const h = this.find(config);
    if (!h) throw new Error('internal: a handler of the configuration was not built');
    return h;
  }
}

/** What the runner runs under `config`: the top level, and a route per file type that has one. */
export function runnerSettingsOf(config: ResolvedConfig, handlers: HandlerSet, watch: Pick<HandlerWatch, 'gated' | 'pausedFor'>): RunnerSettings {
  const gated = (h: HandlerConfig) => watch.gated(handlers.get(h), h);
  return {
    handler: gated(config.handler),
    concurrency: config.concurrency,
    leaseMs: config.leaseMs,
    folders: config.watch.map((w) => ({ dir: w.dir, readyMarker: w.readyMarker, poll: w.poll, fileType: w.fileType })),
    onSuccess: config.onSuccess,
    onDead: config.onDead,
    paused: watch.pausedFor(config.handler),
    routes: routesByFileType(config.watch).map(({ fileType, route }) => ({
      fileType,
      concurrency: route.concurrency,
      handler: gated(route.handler),
      retry: route.retry,
      onSuccess: route.onSuccess,
      onDead: route.onDead,
      paused: watch.pausedFor(route.handler),
    })),
  };
}
