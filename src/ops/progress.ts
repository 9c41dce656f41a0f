/**
 * Progress of `ckpt run --once`: on a terminal, a bar on stderr redrawn in place (done/total,
 * rate, ETA); without one (systemd, CI, a pipe), a pino line every few seconds while something
 * moves. Both end with a summary.
 *
 * A 100-line renderer rather than a progress-bar library: one line, no colours, no multi-bar
 * layout; a dependency would add more code than it saves.
 *
 * "Done" means settled for good: completed or dead. A failed attempt that will be retried is
 * counted as a retry, not as done.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { formatClock, formatCount, formatDuration } from './format.js';

export interface ProgressSummary {
  total: number;
  done: number;
  completed: number;
  dead: number;
  /** Failed attempts that will be retried. */
  retried: number;
  elapsedMs: number;
  /** Settled files per second over the whole run. */
  ratePerSec: number;
}

export interface Progress {
  /** One outcome: `completed`, `dead`, `failed` (will retry); others (released, lost) are ignored. */
  tick(outcome: string): void;
  setTotal(n: number): void;
  /** Stops the timer, draws or logs the summary, and returns it. Idempotent. */
  finish(): ProgressSummary;
}

export interface ProgressOptions {
  total: number;
  /** Draw a bar (stderr is a terminal) instead of logging lines. */
  tty: boolean;
  logger: Logger;
  /** Where the bar is drawn (default process.stderr). */
  stream?: NodeJS.WritableStream;
  /** Between log lines without a terminal (default 5000 ms); between redraws on one (default 1000 ms). */
  intervalMs?: number;
  now?: () => number;
  /** Bar width in characters (default 30). */
  width?: number;
}

/** The bar on the terminal right now, if any: log lines are written above it (aboveProgress). */
let activeBar: { clear(): void; redraw(): void } | null = null;

/**
 * A log destination for a terminal that also shows the bar: each line first erases the bar,
 * is written, and the bar is drawn again below it. Without this, a log line printed while the
 * bar is up continues the bar's line ("...ETA 0:03[04:50:07] ERROR: ..."). Writes are
 * synchronous, like the terminal writes of the bar itself, so the two never interleave.
 */
export function aboveProgress(out: number | NodeJS.WritableStream = 1): { write(chunk: string): boolean } {
  return {
    write(chunk: string): boolean {
      const bar = activeBar;
      bar?.clear();
      if (typeof out === 'number') fs.writeSync(out, chunk);
      else out.write(chunk);
      bar?.redraw();
      return true;
    },
  };
}

/** Redraws at most this often on ticks, so thousands of outcomes a second do not flood the terminal. */
const MIN_REDRAW_MS = 100;

/**
 * Longer than most functions here (about 75 lines) on purpose: the bar, the periodic log line and
 * the final summary are closures over the same five counters, and splitting them would only pass
 * those counters around.
 */
export function createProgress(opts: ProgressOptions): Progress {
  const now = opts.now ?? Date.now;
  const stream = opts.stream ?? process.stderr;
  const width = opts.width ?? 30;
  const started = now();
  let total = Math.max(0, opts.total);
  let completed = 0;
  let dead = 0;
  let retried = 0;
  let lastDraw = 0;
  let lastLogged = -1;
  let finished: ProgressSummary | null = null;

  const summary = (): ProgressSummary => {
    const elapsedMs = Math.max(0, now() - started);
    const done = completed + dead;
    return { total: Math.max(total, done), done, completed, dead, retried, elapsedMs, ratePerSec: elapsedMs > 0 ? (done * 1000) / elapsedMs : 0 };
  };

  const draw = (force: boolean): void => {
    const t = now();
    if (!force && t - lastDraw < MIN_REDRAW_MS) return;
    lastDraw = t;
    // \r and "erase line": redraw in place.
    stream.write(`\r\x1b[2K${progressLine(summary(), width)}`);
  };

  const logLine = (): void => {
    const s = summary();
    if (s.done + s.retried === lastLogged) return;
    lastLogged = s.done + s.retried;
    const eta = etaMs(s);
    opts.logger.info(
      { done: s.done, total: s.total, completed: s.completed, dead: s.dead, retried: s.retried, ratePerSec: round1(s.ratePerSec), etaSeconds: Number.isFinite(eta) ? Math.round(eta / 1000) : null },
      'progress',
    );
  };

  const timer = setInterval(() => (opts.tty ? draw(true) : logLine()), opts.intervalMs ?? (opts.tty ? 1_000 : 5_000));
  timer.unref();
  const bar = { clear: () => void stream.write('\r\x1b[2K'), redraw: () => draw(true) };
  if (opts.tty) {
    activeBar = bar;
    draw(true);
  }

  return {
    tick(outcome) {
      if (finished !== null) return;
      if (outcome === 'completed') completed++;
      else if (outcome === 'dead') dead++;
      else if (outcome === 'failed') retried++;
      else return;
      if (opts.tty) draw(false);
    },
    setTotal(n) {
      total = Math.max(0, n);
      if (opts.tty && finished === null) draw(false);
    },
    finish() {
      if (finished !== null) return finished;
      clearInterval(timer);
      const s = summary();
      finished = s;
      const text = finishedText(s);
      if (opts.tty) {
        if (activeBar === bar) activeBar = null;
        stream.write(`\r\x1b[2K${progressLine(s, width)}\n${text}\n`);
      } else {
        opts.logger.info({ ...s, ratePerSec: round1(s.ratePerSec) }, `finished: ${text}`);
      }
      return s;
    },
  };
}

function etaMs(s: ProgressSummary): number {
  return s.ratePerSec > 0 ? ((s.total - s.done) / s.ratePerSec) * 1000 : Number.NaN;
}

/** The bar: `[####------] done/total pct%  rate files/s  ETA h:mm:ss  (n retried, n dead)`. */
function progressLine(s: ProgressSummary, width: number): string {
  const frac = s.total > 0 ? Math.min(1, s.done / s.total) : 0;
  const filled = Math.round(frac * width);
  const extra = [s.retried > 0 ? `${formatCount(s.retried)} retried` : '', s.dead > 0 ? `${formatCount(s.dead)} dead` : ''].filter(Boolean);
  return (
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${formatCount(s.done)}/${formatCount(s.total)} ${Math.floor(frac * 100)}%` +
    `  ${s.ratePerSec.toFixed(1)} files/s  ETA ${formatClock(etaMs(s))}` +
    (extra.length > 0 ? `  (${extra.join(', ')})` : '')
  );
}

function finishedText(s: ProgressSummary): string {
  return (
    `${formatCount(s.done)} file${s.done === 1 ? '' : 's'} in ${formatDuration(s.elapsedMs)} (${s.ratePerSec.toFixed(1)} files/s): ` +
    `${formatCount(s.completed)} completed, ${formatCount(s.dead)} dead, ${formatCount(s.retried)} retried`
  );
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
