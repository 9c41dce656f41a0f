/**
 * The --once progress display: a bar redrawn in place on a terminal, pino lines without one,
 * and a summary at the end. The clock is passed in; nothing here waits.
 */
import { PassThrough, Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { aboveProgress, createProgress } from '../../src/ops/progress.js';
import { waitFor } from '../helpers/wait.js';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

function logCapture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }));
  return { logger, lines };
}

describe('createProgress', () => {
  it('on a terminal: a bar with done/total, percent, rate and ETA, redrawn in place; a summary at the end', () => {
    let t = 0;
    const out = capture();
    const { logger, lines } = logCapture();
    const p = createProgress({ total: 10, tty: true, logger, stream: out.stream, now: () => t, width: 10 });
    for (let i = 0; i < 4; i++) {
      t += 500;
      p.tick('completed');
    }
    p.tick('failed');
    t += 500;
    p.tick('dead');
    const frames = out.text().split('\r\x1b[2K').filter(Boolean);
    expect(frames[frames.length - 1]).toBe('[#####-----] 5/10 50%  2.0 files/s  ETA 0:03  (1 retried, 1 dead)');
    const s = p.finish();
    expect(s).toEqual({ total: 10, done: 5, completed: 4, dead: 1, retried: 1, elapsedMs: 2_500, ratePerSec: 2 });
    expect(out.text().endsWith('\n5 files in 2.5s (2.0 files/s): 4 completed, 1 dead, 1 retried\n')).toBe(true);
    expect(p.finish()).toBe(s);
    expect(lines).toHaveLength(0);
  });

  it('aboveProgress(): a log line erases the bar, is written, and the bar is drawn again under it', () => {
    let t = 0;
    const term = capture();
    const log = aboveProgress(term.stream);
    const p = createProgress({ total: 2, tty: true, logger: logCapture().logger, stream: term.stream, now: () => t, width: 4 });
    t += 1_000;
    p.tick('completed');
    const before = term.text().length;
    log.write('[12:00:00.000] WARN: failed; will retry\n');
    expect(term.text().slice(before)).toBe('\r\x1b[2K[12:00:00.000] WARN: failed; will retry\n\r\x1b[2K[##--] 1/2 50%  1.0 files/s  ETA 0:01');
    p.finish();
    const after = term.text().length;
    log.write('done\n');
    expect(term.text().slice(after)).toBe('done\n');
  });

  it('setTotal() grows the total; released or lost outcomes are not progress', () => {
    let t = 0;
    const out = capture();
    const p = createProgress({ total: 0, tty: true, logger: logCapture().logger, stream: out.stream, now: () => t, width: 4 });
    p.setTotal(2);
    t += 1_000;
    p.tick('released');
    p.tick('lost');
    p.tick('completed');
    expect(p.finish()).toMatchObject({ total: 2, done: 1, completed: 1 });
    expect(out.text()).toContain('[##--] 1/2 50%');
  });

  it('without a terminal: progress and summary as pino lines, nothing on the stream', async () => {
    let t = 0;
    const out = capture();
    const { logger, lines } = logCapture();
    const p = createProgress({ total: 3, tty: false, logger, stream: out.stream, now: () => t, intervalMs: 5 });
    t += 1_000;
    p.tick('completed');
    // The interval timer writes the line.
    const line = await waitFor(() => lines.find((l) => l.msg === 'progress'));
    expect(line).toMatchObject({ done: 1, total: 3, completed: 1, dead: 0, retried: 0, ratePerSec: 1, etaSeconds: 2 });
    t += 1_000;
    p.tick('completed');
    p.tick('completed');
    const s = p.finish();
    expect(s.done).toBe(3);
    expect(lines[lines.length - 1]).toMatchObject({ done: 3, total: 3, ratePerSec: 1.5, msg: 'finished: 3 files in 2.0s (1.5 files/s): 3 completed, 0 dead, 0 retried' });
    expect(out.text()).toBe('');
  });
});
