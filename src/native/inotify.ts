/**
 * inotify through the native part: one descriptor, watches added by folder, and each read's
 * raw `struct inotify_event` records parsed here (wd, mask, cookie, len, name padded with NULs).
 */
import type { NativeAddon, NativeHandle } from './addon.js';

export const IN = {
  MODIFY: 0x2,
  ATTRIB: 0x4,
  CLOSE_WRITE: 0x8,
  CLOSE_NOWRITE: 0x10,
  OPEN: 0x20,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  UNMOUNT: 0x2000,
  Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
  ONLYDIR: 0x1000000,
  DONT_FOLLOW: 0x2000000,
  EXCL_UNLINK: 0x4000000,
  ISDIR: 0x40000000,
} as const;

/**
 * What a folder watch asks for: what fs.watch asks for (create, delete, moves, modify, attrib,
 * the folder itself going) plus open and both kinds of close, which readiness needs.
 * EXCL_UNLINK: no events for files already unlinked but still open.
 */
export const FOLDER_MASK =
  IN.MODIFY | IN.ATTRIB | IN.CLOSE_WRITE | IN.CLOSE_NOWRITE | IN.OPEN | IN.MOVED_FROM | IN.MOVED_TO | IN.CREATE |
  IN.DELETE | IN.DELETE_SELF | IN.MOVE_SELF | IN.ONLYDIR | IN.DONT_FOLLOW | IN.EXCL_UNLINK;

export interface RawEvent {
  wd: number;
  mask: number;
  /** '' for an event about the watched folder itself. */
  name: string;
}

/** The records of one read (the kernel never splits a record across reads). */
export function parseEvents(buf: Buffer): RawEvent[] {
  const out: RawEvent[] = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    const wd = buf.readInt32LE(off);
    const mask = buf.readUInt32LE(off + 4);
    const len = buf.readUInt32LE(off + 12);
    let end = off + 16;
    const stop = Math.min(off + 16 + len, buf.length);
    while (end < stop && buf[end] !== 0) end++;
    out.push({ wd, mask, name: buf.toString('utf8', off + 16, end) });
    off += 16 + len;
  }
  return out;
}

/** One inotify descriptor on the event loop. */
export class Inotify {
  private readonly handle: NativeHandle;
  private closed = false;

  /** `drained`: this read emptied the queue. */
  constructor(
    private readonly addon: NativeAddon,
    onEvents: (events: RawEvent[] | null, drained: boolean) => void,
  ) {
    this.handle = addon.inotifyOpen((buf, drained) => onEvents(buf === null ? null : parseEvents(buf), drained === true));
  }

  /** Watch descriptor of `dir` (the same one again for a folder already watched). Throws errno errors. */
  add(dir: string, mask = FOLDER_MASK): number {
    return this.addon.inotifyAdd(this.handle, dir, mask);
  }

  remove(wd: number): void {
    if (!this.closed) this.addon.inotifyRemove(this.handle, wd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.close(this.handle);
  }
}
