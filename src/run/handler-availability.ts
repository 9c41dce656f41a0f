/**
 * A command handler whose program is missing is not any file's fault. At start that is a
 * configuration error (exit 78, handlerProblemAtStart). While running (an upgrade removes the
 * program for a moment) the daemon pauses instead:
 *
 *   run fails to spawn --> checkProgram() now? still there: an ordinary failure (counted)
 *                                              gone: HandlerAvailability -> unavailable
 *   unavailable: the run is given back (no attempt counted), the runner stops claiming, one
 *   warn line, a state file for `ckpt status`, /healthz 503, gauge 1; re-checked every
 *   RECHECK_MS; back: one info line, everything undone, the runner woken.
 *
 * Deciding by a fresh look at the program (not by the spawn's error code alone) keeps a
 * program that exists but cannot run (a missing #! interpreter also reports ENOENT) an
 * ordinary, counted failure: otherwise a file would be claimed and given back forever.
 */
import type { Logger } from 'pino';
import { allHandlers } from '../config/routes.js';
import type { HandlerConfig, ResolvedConfig } from '../config/types.js';
import type { Handler, HandlerOutcome } from './handler-types.js';
import { type ProgramCheck, checkProgram, programProblemLine } from './handler-program.js';
import { removeHandlerState, removeStaleHandlerStates, writeHandlerState } from './handler-state-file.js';

/**
 * How often a missing program is looked for again. A look is a stat per PATH entry: 6-13 us on
 * this 2-core box under load (20,000 looks at a relative path and at names in an 11-entry PATH),
 * so looking every second costs nothing; an upgrade that swaps a binary takes seconds, and
 * files wait at most about a second longer than the program was gone.
 */
export const RECHECK_MS = 1_000;

export interface HandlerUnavailable {
  /** Epoch ms since when. */
  since: number;
  program: string;
  why: string;
}

export interface AvailabilityOptions {
  check: () => ProgramCheck;
  /** Already carries the workerId. */
  logger: Logger;
  recheckMs?: number;
  now?: () => number;
  /** Called on every change: the new state (null: available again). */
  onChange?: (u: HandlerUnavailable | null) => void;
  /** Called once by close(). */
  onClose?: () => void;
}

export class HandlerAvailability {
  private state: HandlerUnavailable | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly recheckMs: number;
  private readonly now: () => number;

  constructor(private readonly o: AvailabilityOptions) {
    this.recheckMs = o.recheckMs ?? RECHECK_MS;
    this.now = o.now ?? Date.now;
  }

  /** null while the program can be started. */
  get unavailable(): HandlerUnavailable | null {
    return this.state;
  }

  /**
   * A run could not start the program: look at it now. True when it is gone (the run was not
   * the file's fault); the first such answer switches to unavailable.
   */
  confirmGone(): boolean {
    if (this.state !== null) return true;
    const c = this.o.check();
    if (c.ok) return false;
    this.state = { since: this.now(), program: c.program, why: c.why };
    this.o.logger.warn(
      { program: c.program, why: c.why, recheckMs: this.recheckMs },
      `handler program unavailable: ${c.why}; claiming paused, files keep their retries; looking again every ${this.recheckMs} ms`,
    );
    this.timer = setInterval(() => this.recheck(), this.recheckMs);
    this.timer.unref();
    this.notify();
    return true;
  }

  /** Stops the re-checks (the daemon is stopping). */
  close(): void {
    this.stopRechecks();
    this.o.onClose?.();
  }

  private stopRechecks(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private recheck(): void {
    const was = this.state;
    if (was === null) return;
    const c = this.o.check();
    if (!c.ok) return;
    this.stopRechecks();
    this.state = null;
    this.o.logger.info({ program: c.program, resolved: c.resolved, unavailableMs: this.now() - was.since }, 'handler program is back: claiming resumes');
    this.notify();
  }

  private notify(): void {
    try {
      this.o.onChange?.(this.state);
    } catch (err) {
      this.o.logger.error({ err }, 'handler availability listener failed');
    }
  }
}

/**
 * The handler as the runner sees it: while the program is unavailable nothing is started, and
 * a spawn failure of a program that is gone comes back as kind `unavailable` (the runner gives
 * such a claim back without counting an attempt).
 */
export function gateHandler(inner: Handler, a: HandlerAvailability): Handler {
  return async (ctx) => {
    const u = a.unavailable;
    if (u !== null) return unavailableOutcome(u.why, 0);
    const out = await inner(ctx);
    if (!out.ok && out.kind === 'spawn' && a.confirmGone()) return unavailableOutcome(a.unavailable?.why ?? out.error, out.durationMs);
    return out;
  };
}

function unavailableOutcome(why: string, durationMs: number): HandlerOutcome {
  return { ok: false, permanent: false, kind: 'unavailable', error: `handler program unavailable: ${why}`, durationMs };
}

/** The check of a command handler's program (null for a module handler). */
export function programCheckOf(config: Pick<ResolvedConfig, 'handler'>): (() => ProgramCheck) | null {
  const h = config.handler;
  if (h.kind !== 'command') return null;
  const program = h.command[0] ?? '';
  return () => checkProgram(program, h.cwd);
}

/**
 * The one line `ckpt run` exits 78 with when a command handler's program cannot be started
 * (the top-level one, `key` 'handler', or a route's, `watch[1].handler`); null when it can.
 */
export function handlerProblemAtStart(config: Pick<ResolvedConfig, 'handler' | 'configPath'>, key = 'handler'): string | null {
  const check = programCheckOf(config);
  const c = check?.();
  return c === undefined || c.ok ? null : programProblemLine(config.configPath, c, key);
}

/** The first handler of the config (top level, then each route's) that cannot be started, or null. */
export function anyHandlerProblemAtStart(config: Pick<ResolvedConfig, 'handler' | 'configPath' | 'watch'>): { key: string; line: string } | null {
  for (const { key, handler } of allHandlers(config)) {
    const line = handlerProblemAtStart({ handler, configPath: config.configPath }, key);
    if (line !== null) return { key: `${key}.command[0]`, line };
  }
  return null;
}

/** Where a command handler's program is looked for: one availability per program (null for a module). */
export function programKey(h: HandlerConfig): string | null {
  return h.kind === 'command' ? `${h.cwd}\0${h.command[0] ?? ''}` : null;
}

export interface DaemonAvailabilityOptions {
  logger: Logger;
  workerId: string;
  /** Where the state file for `ckpt status` goes (the fallback folder); null: none. */
  stateDir: string | null;
  fileMode: number;
  metrics?: { setHandlerUnavailable(on: boolean): void } | null;
  /** Called when the program is back: the runner claims again. */
  wake: () => void;
  /**
   * With several programs (routes): the state the gauge and the state file show, whichever
   * program changed (the first one unavailable); default: this program's own state.
   */
  shown?: () => HandlerUnavailable | null;
}

/**
 * The daemon's monitor for a command handler (null for a module handler): every change goes
 * to the gauge and the state file, and "back" wakes the runner. close() stops the re-checks and
 * removes this process's state file.
 */
export function availabilityFor(config: Pick<ResolvedConfig, 'handler'>, o: DaemonAvailabilityOptions): HandlerAvailability | null {
  const check = programCheckOf(config);
  if (check === null) return null;
  const dir = o.stateDir;
  if (dir !== null) removeStaleHandlerStates(dir);
  const a = new HandlerAvailability({
    check,
    logger: o.logger,
    onChange: (u) => {
      const shown = o.shown ? o.shown() : u;
      o.metrics?.setHandlerUnavailable(shown !== null);
      if (dir !== null) {
        if (shown === null) removeHandlerState(dir, o.workerId);
        else {
          const err = writeHandlerState(dir, { workerId: o.workerId, ...shown }, o.fileMode);
          if (err) o.logger.warn({ err, folder: dir }, 'could not write the handler state file: ckpt status will not show the handler as unavailable');
        }
      }
      if (u === null) o.wake();
    },
    onClose: () => {
      if (dir !== null) removeHandlerState(dir, o.workerId);
    },
  });
  return a;
}
