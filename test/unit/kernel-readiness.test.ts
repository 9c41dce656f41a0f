/**
 * The readiness rule for kernel events on its own (src/watch/kernel-readiness.ts): event
 * sequences as inotify reports them for common writers.
 */
import { describe, expect, it } from 'vitest';
import type { KernelEvent } from '../../src/watch/events.js';
import { KernelReadiness } from '../../src/watch/kernel-readiness.js';

function feed(k: KernelReadiness, events: KernelEvent[]): Array<string | null> {
  return events.map((e) => k.event(e, '/in/a.csv'));
}

describe('kernel readiness', () => {
  it('a file created, written and closed is ready at its close, not before', () => {
    const k = new KernelReadiness();
    expect(feed(k, ['create', 'open', 'modify', 'modify'])).toEqual([null, null, null, null]);
    expect(k.writing('/in/a.csv')).toBe(true);
    expect(k.event('close-write', '/in/a.csv')).toBe('closed');
    expect(k.writing('/in/a.csv')).toBe(false);
  });

  it('created and held open without a write yet: writing (an empty file is not taken)', () => {
    const k = new KernelReadiness();
    feed(k, ['create', 'open']);
    expect(k.writing('/in/a.csv')).toBe(true);
  });

  it('two writers: ready only when the second one closes too', () => {
    const k = new KernelReadiness();
    expect(feed(k, ['create', 'open', 'open', 'modify', 'close-write'])).toEqual([null, null, null, null, null]);
    expect(k.writing('/in/a.csv')).toBe(true);
    expect(k.event('close-write', '/in/a.csv')).toBe('closed');
  });

  it('a reader that keeps the file open past the writer: ready when the reader closes', () => {
    const k = new KernelReadiness();
    expect(feed(k, ['create', 'open', 'open', 'modify', 'close-write', 'close-nowrite'])).toEqual([null, null, null, null, null, 'closed']);
  });

  it('a reader alone (the handler reading a file already handed on) makes nothing ready', () => {
    const k = new KernelReadiness();
    expect(feed(k, ['open', 'close-nowrite'])).toEqual([null, null]);
    expect(k.size).toBe(0);
  });

  it('renamed in: ready at once; a hard link (create, no open) is left to the stability timer', () => {
    const k = new KernelReadiness();
    expect(k.event('moved-in', '/in/a.csv')).toBe('renamed-in');
    expect(k.event('create', '/in/b.csv')).toBeNull();
    expect(k.writing('/in/b.csv')).toBe(false);
  });

  it('written by a writer that opened it before the watch began: writing until its close', () => {
    const k = new KernelReadiness();
    k.event('modify', '/in/a.csv');
    expect(k.writing('/in/a.csv')).toBe(true);
    expect(k.event('close-write', '/in/a.csv')).toBe('closed');
  });

  it('an overflow forgets every open file', () => {
    const k = new KernelReadiness();
    feed(k, ['create', 'open', 'modify']);
    k.event('overflow', '/in');
    expect(k.writing('/in/a.csv')).toBe(false);
    expect(k.size).toBe(0);
  });
});
