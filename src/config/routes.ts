/**
 * Routes: a `watch[]` entry may carry its own handler, concurrency, retry, onSuccess and onDead
 * (docs/routes.md). Each one it leaves out is the top-level setting; an entry that sets none has
 * no route and runs under the top level, as before routes existed.
 *
 * The rules, written once here:
 * - a file's route is chosen by its file type (the ledger records the type, not the entry), so
 *   two entries with one fileType must not carry different routes;
 * - a route's `concurrency` is its cap on the process's slots; the top-level `concurrency` is the
 *   total, so a cap above it is refused (it could never be reached).
 */
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ConfigError } from './errors.js';
import { DEFAULTS, type RawAfterAction, type RawHandler, type RawWatch } from './schema.js';
import type { AfterAction, HandlerConfig, ResolvedConfig, RouteConfig, WatchConfig } from './types.js';

/** The top-level settings a route falls back to. */
export type RouteDefaults = RouteConfig;

/** The keys of a watch entry that make up its route. */
export const ROUTE_KEYS = ['handler', 'concurrency', 'retry', 'onSuccess', 'onDead'] as const;

export function resolveHandler(raw: RawHandler, configDir: string): HandlerConfig {
  return raw.command !== undefined
    ? { kind: 'command', command: [...raw.command], timeoutMs: raw.timeoutMs, killGraceMs: raw.killGraceMs ?? DEFAULTS.killGraceMs, cwd: configDir }
    : { kind: 'module', module: path.resolve(configDir, raw.module ?? ''), timeoutMs: raw.timeoutMs };
}

export function resolveAfterAction(a: RawAfterAction, configDir: string): AfterAction {
  return a === 'keep' || a === 'delete' ? { kind: a } : { kind: 'move', dir: path.resolve(configDir, a.moveTo) };
}

/** Entry `i`'s route, or undefined when it sets none of the route keys. */
export function resolveRoute(w: RawWatch, i: number, top: RouteDefaults, configDir: string, display: string, report: (e: ConfigError) => void): RouteConfig | undefined {
  if (ROUTE_KEYS.every((k) => w[k] === undefined)) return undefined;
  const retry = { ...top.retry, ...definedOnly(w.retry ?? {}) };
  if (retry.maxDelayMs < retry.baseDelayMs) {
    report(ConfigError.at(display, `watch[${i}].retry.maxDelayMs`, `expected at least baseDelayMs (${retry.baseDelayMs}), got ${retry.maxDelayMs}`));
  }
  const concurrency = w.concurrency ?? top.concurrency;
  if (concurrency > top.concurrency) {
    report(
      ConfigError.at(
        display,
        `watch[${i}].concurrency`,
        `expected at most the top-level concurrency (${top.concurrency}, the process's total slots; a route's concurrency is its share of them), got ${concurrency}`,
      ),
    );
  }
  return {
    handler: w.handler === undefined ? top.handler : resolveHandler(w.handler, configDir),
    concurrency,
    retry,
    onSuccess: w.onSuccess === undefined ? top.onSuccess : resolveAfterAction(w.onSuccess, configDir),
    onDead: w.onDead === undefined ? top.onDead : resolveAfterAction(w.onDead, configDir),
  };
}

/** Entries sharing a file type must share the route: the type is what picks it at claim time. */
export function checkSharedFileTypes(watch: readonly WatchConfig[], display: string, report: (e: ConfigError) => void): void {
  watch.forEach((w, i) => {
    const j = watch.findIndex((o) => o.fileType === w.fileType);
    if (j < i && !isDeepStrictEqual(watch[j]!.route, w.route)) {
      report(
        ConfigError.at(
          display,
          `watch[${i}].fileType`,
          `${JSON.stringify(w.fileType)} is also the file type of watch[${j}], which has a different route (handler, concurrency, retry, onSuccess, onDead): a file's route is chosen by its type; give each entry a fileType of its own`,
        ),
      );
    }
  });
}

/** Every route's own after-action folder (one that is not the top level's), with the key that names it. */
export function routeMoveFolders(config: Pick<ResolvedConfig, 'watch' | 'onSuccess' | 'onDead'>): { key: string; dir: string }[] {
  const out: { key: string; dir: string }[] = [];
  config.watch.forEach((w, i) => {
    for (const k of ['onSuccess', 'onDead'] as const) {
      const a = w.route?.[k];
      if (a?.kind === 'move' && !isDeepStrictEqual(a, config[k])) out.push({ key: `watch[${i}].${k}.moveTo`, dir: a.dir });
    }
  });
  return out;
}

/** Every route's handler that is not the top-level one, with the key that names it. */
export function routeHandlers(config: Pick<ResolvedConfig, 'watch' | 'handler'>): { key: string; handler: HandlerConfig }[] {
  const out: { key: string; handler: HandlerConfig }[] = [];
  config.watch.forEach((w, i) => {
    const h = w.route?.handler;
    if (h !== undefined && !isDeepStrictEqual(h, config.handler)) out.push({ key: `watch[${i}].handler`, handler: h });
  });
  return out;
}

/** The top-level handler and every route's own one, each with its key. */
export function allHandlers(config: Pick<ResolvedConfig, 'watch' | 'handler'>): { key: string; handler: HandlerConfig }[] {
  return [{ key: 'handler', handler: config.handler }, ...routeHandlers(config)];
}

/** One route per file type that has one, in the order of the entries (the runtime's table). */
export function routesByFileType(watch: readonly WatchConfig[]): { fileType: string; route: RouteConfig }[] {
  const out = new Map<string, RouteConfig>();
  for (const w of watch) if (w.route !== undefined && !out.has(w.fileType)) out.set(w.fileType, w.route);
  return [...out].map(([fileType, route]) => ({ fileType, route }));
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
