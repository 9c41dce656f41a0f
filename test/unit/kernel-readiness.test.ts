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

  it('after an overflow, a write whose close the kernel dropped (queue full again before the overflow record was read) holds nothing', () => {
    // The records of one such read, in order: the overflow record, then a file created, opened and
    // written, its close lost. Until a read drains the queue, these records may have gaps.
    const k = new KernelReadiness();
    k.event('overflow', '/in');
    expect(feed(k, ['create', 'open', 'modify'])).toEqual([null, null, null]);
    expect(k.writing('/in/a.csv')).toBe(false);
    k.event('drained', '/in');
    expect(k.writing('/in/a.csv')).toBe(false);
    // Complete again: a write holds the file until its close.
    feed(k, ['modify']);
    expect(k.writing('/in/a.csv')).toBe(true);
    expect(k.event('close-write', '/in/a.csv')).toBe('closed');
  });

  it('between an overflow and the drain, a close does not make a file ready (a later open may be lost); a rename does', () => {
    const k = new KernelReadiness();
    k.event('overflow', '/in');
    expect(k.event('close-write', '/in/a.csv')).toBeNull();
    expect(k.event('moved-in', '/in/b.csv')).toBe('renamed-in');
    expect(k.size).toBe(0);
  });

  it("an overflow of one folder's queue leaves what is known of another folder's writers", () => {
    const k = new KernelReadiness();
    feed(k, ['create', 'open', 'modify']);
    k.event('overflow', '/other');
    expect(k.writing('/in/a.csv')).toBe(true);
    expect(k.event('close-write', '/in/a.csv')).toBe('closed');
  });

  it('a sub-folder no longer watched has its files forgotten (their closes cannot be seen)', () => {
    const k = new KernelReadiness();
    for (const e of ['create', 'open', 'modify'] as const) k.event(e, '/in/sub/a.csv');
    feed(k, ['create', 'open', 'modify']);
    k.event('unwatched', '/in/sub');
    expect(k.writing('/in/sub/a.csv')).toBe(false);
    expect(k.writing('/in/a.csv')).toBe(true);
  });

  it('a folder watched again by a new inotify instance: nothing of the old one holds, and its events count at once', () => {
    const k = new KernelReadiness();
    feed(k, ['create', 'open', 'modify']);
    k.event('overflow', '/in');
    k.restart('/in');
    feed(k, ['create', 'open', 'modify']);
    expect(k.writing('/in/a.csv')).toBe(true);
  });

  it('an overflow forgets every open file', () => {
    const k = new KernelReadiness();
    feed(k, ['create', 'open', 'modify']);
    k.event('overflow', '/in');
    expect(k.writing('/in/a.csv')).toBe(false);
    expect(k.size).toBe(0);
  });
});
