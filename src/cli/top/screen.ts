/**
 * The live screen of `ckpt top`, with plain escape codes (why no library: docs/dependencies.md).
 *
 *   enter:   alternate screen buffer, cursor hidden, keyboard raw (keys arrive one by one)
 *   refresh: read (source.read), then draw: cursor home, each line cleared then written, the
 *            rest of the screen cleared below the last line; one write() per frame, so a
 *            frame never shows half-drawn and a shorter frame leaves nothing behind
 *   resize:  the last snapshot drawn again at once at the new size (SIGWINCH, 'resize')
 *   leave:   on q, Ctrl-C, Ctrl-D, SIGTERM, SIGHUP or SIGINT: keyboard and cursor back, main
 *            screen back, exactly as the shell left them
 *
 * A refresh that cannot read the database keeps the last snapshot on the screen and says why
 * and since when; the next refresh tries again.
 */
import type tty from 'node:tty';
import { renderTop } from './render.js';
import type { TopJson } from './snapshot.js';

const ENTER = '\x1b[?1049h\x1b[?25l';
const LEAVE = '\x1b[?25h\x1b[?1049l';
const HOME = '\x1b[H';
/** Erase the line (cursor at its start, so a line of exactly the screen's width keeps its last cell). */
const CLEAR_LINE = '\x1b[2K';
const CLEAR_BELOW = '\x1b[J';
/** q, Q, Ctrl-C, Ctrl-D. */
const QUIT_KEYS = new Set(['q', 'Q', '\x03', '\x04']);

export interface ScreenSource {
  /** The database as shown in the title. */
  where: string | null;
  /** One snapshot; a throw is shown as the problem (the last snapshot stays). */
  read(now: number): Promise<TopJson>;
}

export interface ScreenOptions {
  intervalMs: number;
  input: tty.ReadStream;
  output: tty.WriteStream;
}

/** The frame as one string: `lines` from the top-left, everything below them cleared. */
export function frame(lines: readonly string[], height: number): string {
  const body = lines.map((l) => CLEAR_LINE + l).join('\r\n');
  // Below a frame shorter than the screen: the next line's start, then clear to the end.
  return HOME + body + (lines.length < height ? `\r\n${CLEAR_BELOW}` : '');
}

/** Runs until a quit key or signal; resolves once the terminal is restored. */
// Over 60 lines on purpose: draw, refresh and quit are closures over the same four variables, and every listener quit() removes must be the very function that was added.
export function runScreen(source: ScreenSource, opts: ScreenOptions): Promise<void> {
  const { input, output } = opts;
  let last: TopJson | null = null;
  let problem: { message: string; since: number } | null = null;
  let timer: NodeJS.Timeout | null = null;
  let done = false;

  const draw = () => {
    if (done) return;
    const width = output.columns || 80;
    const height = output.rows || 24;
    const lines = renderTop(last, { now: Date.now(), width, height, where: source.where, problem, live: true });
    output.write(frame(lines, height));
  };

  return new Promise<void>((resolve, reject) => {
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT'];
    const onKey = (b: Buffer) => {
      if ([...b.toString('utf8')].some((c) => QUIT_KEYS.has(c))) quit();
    };
    // Whatever ends it, the terminal is given back: also on a bug (below) or process.exit().
    const restore = () => {
      if (input.isTTY) input.setRawMode(false);
      output.write(LEAVE);
    };
    const quit = (err?: unknown) => {
      if (done) return;
      done = true;
      if (timer !== null) clearTimeout(timer);
      input.off('data', onKey);
      output.off('resize', redraw);
      for (const s of signals) process.off(s, onSignal);
      process.off('exit', restore);
      restore();
      input.pause();
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onSignal = () => quit();
    const redraw = () => {
      try {
        draw();
      } catch (err) {
        quit(err);
      }
    };
    const refresh = async () => {
      const now = Date.now();
      try {
        last = await source.read(now);
        problem = null;
      } catch (err) {
        const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
        problem = { message, since: problem?.since ?? now };
      }
      redraw();
      if (!done) timer = setTimeout(() => void refresh(), opts.intervalMs);
    };
    for (const s of signals) process.on(s, onSignal);
    process.on('exit', restore);
    output.on('resize', redraw);
    input.on('data', onKey);
    if (input.isTTY) input.setRawMode(true);
    input.resume();
    output.write(ENTER);
    void refresh();
  });
}
