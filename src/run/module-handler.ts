/**
 * The module handler: an ES module, loaded once, whose default export is called per file:
 *
 *   export default async function (file, ctx) { ...; return { total, filtered, persisted }; }
 *
 * It runs inside the daemon, so it is cheaper than a program per file, but it cannot be killed:
 * on a timeout or a lost lease ckpt aborts `ctx.signal` and reports the failure at once, while
 * the user's promise may keep running until it notices the signal (its result is then ignored).
 * A handler that does long work should pass `ctx.signal` on (fetch, streams, database drivers).
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { timerDelay } from './command-handler.js';
import { isPermanentError } from './errors.js';
import type { Handler, HandlerContext, HandlerOutcome } from './handler-types.js';
import { provideCkptSpecifier } from './ckpt-specifier.js';
import { loadErrorText } from './load-error.js';
import { checkStats } from './stats-line.js';

export interface ModuleHandlerConfig {
  /** Path of the module (absolute, or relative to the working directory), or a file: URL. */
  module: string;
  /** Per-file limit; unset or 0 means no limit. */
  timeoutMs?: number;
}

/** What the user's function receives as its second argument. */
export interface ModuleHandlerContext {
  /** The file as the store records it (the first argument is the same path, resolved). */
  fileUrl: string;
  /** The file's version in the store; a new content is a new version. */
  version: number;
  attempt: number;
  workerId: string;
  /** Stable for one version of one file: a sink can de-duplicate on it. */
  idempotencyKey: string;
  fileType: string;
  logger: Logger;
  /** Aborted when the run times out, the lease is lost or the daemon stops. */
  signal: AbortSignal;
}

export type ModuleHandlerFunction = (file: string, ctx: ModuleHandlerContext) => unknown;

const TS_EXTENSION = /\.[cm]?tsx?$/i;

/**
 * Loads the module and checks its default export. Throws a clear one-line Error (the daemon
 * exits 78) when the module is missing, fails to load, or has no default function export.
 *
 * TypeScript: Node 20 cannot load .ts by itself (no type stripping before Node 22.6). ckpt does
 * not bundle a TypeScript loader: tsx is only a dev dependency, and the daemon should not
 * compile code at run time behind the operator's back. If the process was started with the tsx
 * loader registered (`node --import tsx ...`, or NODE_OPTIONS="--import tsx"), importing the .ts
 * file just works; otherwise Node's ERR_UNKNOWN_FILE_EXTENSION is turned into an error saying so.
 */
export async function loadModuleHandler(cfg: ModuleHandlerConfig): Promise<Handler> {
  if (typeof cfg.module !== 'string' || cfg.module === '') throw new Error('handler.module must be a path to an ES module');
  if (cfg.timeoutMs !== undefined && !(Number.isFinite(cfg.timeoutMs) && cfg.timeoutMs >= 0)) {
    throw new Error(`handler.timeoutMs must be a number of milliseconds >= 0 (0: no limit), got ${String(cfg.timeoutMs)}`);
  }
  const file = cfg.module.startsWith('file:') ? fileURLToPath(cfg.module) : path.resolve(cfg.module);
  let isFile = false;
  try {
    isFile = fs.statSync(file).isFile();
  } catch {
    // reported below
  }
  if (!isFile) throw new Error(`handler module not found: ${file}`);

  let mod: Record<string, unknown>;
  provideCkptSpecifier();
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException | null)?.code === 'ERR_UNKNOWN_FILE_EXTENSION' && TS_EXTENSION.test(file)) {
      throw new Error(
        `handler module ${file} is TypeScript, which Node ${process.versions.node} cannot load by itself: ` +
          `start ckpt with the tsx loader registered (node --import tsx .../ckpt/dist/cli/main.js ..., ` +
          `or NODE_OPTIONS="--import tsx" with tsx installed), or compile the handler to .js/.mjs`,
      );
    }
    throw new Error(`handler module ${file} failed to load: ${loadErrorText(err, file)}`);
  }

  let fn: unknown = mod.default;
  // A CommonJS module (or a .ts file loaded by tsx outside a "type": "module" package) that
  // sets `exports.default` arrives as { default: { default: fn } }.
  if (typeof fn === 'object' && fn !== null && typeof (fn as { default?: unknown }).default === 'function') {
    fn = (fn as { default: unknown }).default;
  }
  if (typeof fn !== 'function') {
    throw new Error(
      `handler module ${file} must have a default export that is a function (file, ctx) => stats | void; ` +
        `its default export is ${fn === undefined ? 'missing' : fn === null ? 'null' : typeof fn}`,
    );
  }
  const userFn = fn as ModuleHandlerFunction;
  const timeoutMs = timerDelay(cfg.timeoutMs);
  return (ctx) => runModule(userFn, timeoutMs, ctx);
}

async function runModule(fn: ModuleHandlerFunction, timeoutMs: number | undefined, ctx: HandlerContext): Promise<HandlerOutcome> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const log = ctx.logger;
  const file = path.resolve(ctx.fileUrl);
  if (ctx.signal.aborted) return failure('aborted', `aborted before start (${reasonText(ctx.signal.reason)})`, 0);

  const inner = new LazyAbort();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<HandlerOutcome>((resolve) => {
    onAbort = () => {
      inner.abort(ctx.signal.reason);
      resolve(failure('aborted', `aborted (${reasonText(ctx.signal.reason)}); the handler's promise may still be running`, elapsed()));
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        const msg = `timed out after ${timeoutMs} ms`;
        inner.abort(new Error(msg));
        resolve(failure('timeout', `${msg}; ctx.signal aborted, the handler's promise may still be running`, elapsed()));
      }, timeoutMs);
    }
  });

  const userCtx: ModuleHandlerContext = Object.freeze({
    fileUrl: ctx.fileUrl,
    version: ctx.version,
    attempt: ctx.attempt,
    workerId: ctx.workerId,
    idempotencyKey: ctx.idempotencyKey,
    fileType: ctx.fileType,
    logger: log,
    get signal(): AbortSignal {
      return inner.signal;
    },
  });

  let settledInTime = true;
  // The async wrapper turns a synchronous throw into a rejection; `done` itself never rejects.
  const done: Promise<HandlerOutcome> = (async () => fn(file, userCtx))().then(
    (value) => success(value, log, elapsed()),
    (err: unknown) => thrown(err, elapsed()),
  );
  try {
    const outcome = await Promise.race([done, stopped]);
    if (!outcome.ok && (outcome.kind === 'timeout' || outcome.kind === 'aborted')) settledInTime = false;
    return outcome;
  } finally {
    clearTimeout(timer);
    if (onAbort) ctx.signal.removeEventListener('abort', onAbort);
    if (!settledInTime) {
      void done.then((late) => {
        log.warn({ lateOk: late.ok, lateDurationMs: late.durationMs }, 'module handler settled after it was timed out or aborted; its result is ignored');
      });
    }
  }
}

/**
 * The handler's own abort signal, made when the handler first reads `ctx.signal` (already
 * aborted if the run was stopped before that). An AbortController per run, with its signal, was
 * about 2 us of the no-op pipeline's 87 us of CPU per file (scripts/bench/profile-pipeline.ts),
 * and most handlers never look at the signal.
 */
class LazyAbort {
  private controller: AbortController | undefined;
  private stopped = false;
  private reason: unknown;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.stopped) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

function success(value: unknown, log: Logger, durationMs: number): HandlerOutcome {
  if (value === undefined || value === null) return { ok: true, stats: null, durationMs };
  const checked = checkStats(value);
  if ('stats' in checked) return { ok: true, stats: checked.stats, durationMs };
  log.warn(`module handler returned something that is not stats; ignored (${checked.problem})`);
  return { ok: true, stats: null, durationMs };
}

function thrown(err: unknown, durationMs: number): HandlerOutcome {
  return { ok: false, permanent: isPermanentError(err), kind: 'threw', error: errorText(err), durationMs };
}

/** `Name: message` and the top stack frame, for the store's error column. Never throws. */
export function errorText(err: unknown): string {
  try {
    if (err instanceof Error) {
      const head = `${err.name}: ${err.message}`;
      const frame = err.stack?.split('\n').find((l) => l.trimStart().startsWith('at '));
      return frame ? `${head}\n    ${frame.trim()}` : head;
    }
    if (typeof err === 'object' && err !== null) {
      const e = err as { name?: unknown; message?: unknown };
      if (typeof e.message === 'string') return `${typeof e.name === 'string' ? e.name : 'Error'}: ${e.message}`;
      return `threw a non-Error value: ${JSON.stringify(err) ?? String(err)}`;
    }
    return `threw a non-Error value: ${String(err)}`;
  } catch {
    return 'threw a value that cannot be printed';
  }
}

function failure(kind: 'timeout' | 'aborted', error: string, durationMs: number): HandlerOutcome {
  return { ok: false, permanent: false, kind, error, durationMs };
}

function reasonText(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  if (reason === undefined) return 'no reason given';
  try {
    return String(reason);
  } catch {
    return 'unprintable reason';
  }
}
