/**
 * What a launched handler leaves to watch: the tail of its output, and its process group to
 * signal. Shared by the two ways ckpt starts a handler (command-handler.ts through Node or the
 * spawn helper, native-launcher.ts through posix_spawn).
 */
import type { Logger } from 'pino';
import type { OutputTail } from './spawn-helper.js';

/** Keeps the last `limit` bytes of a stream without ever holding more than that. */
export class ByteTail {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes seen in total. */
  seen = 0;

  constructor(readonly limit: number) {}

  push(chunk: Buffer): void {
    this.seen += chunk.length;
    if (chunk.length >= this.limit) {
      // Copy: a subarray would keep the whole (possibly 64 KB) chunk alive.
      this.buf = Buffer.from(chunk.subarray(chunk.length - this.limit));
      return;
    }
    const keep = Math.min(this.buf.length, this.limit - chunk.length);
    this.buf = Buffer.concat([this.buf.subarray(this.buf.length - keep), chunk]);
  }

  get truncated(): boolean {
    return this.seen > this.buf.length;
  }

  get size(): number {
    return this.buf.length;
  }

  /** A tail kept elsewhere (the spawn helper): its bytes, and how many the stream had in all. */
  static of(limit: number, t: OutputTail): ByteTail {
    const b = new ByteTail(limit);
    b.buf = t.bytes.length > limit ? Buffer.from(t.bytes.subarray(t.bytes.length - limit)) : t.bytes;
    b.seen = Math.max(t.seen, b.buf.length);
    return b;
  }

  /** A copy of the bytes kept. */
  bytes(): Buffer {
    return Buffer.from(this.buf);
  }

  /** The tail as UTF-8, without a multi-byte character cut in half at its start. */
  text(): string {
    let start = 0;
    if (this.truncated) {
      while (start < this.buf.length && start < 3 && ((this.buf[start] ?? 0) & 0xc0) === 0x80) start++;
    }
    return this.buf.subarray(start).toString('utf8');
  }
}

/**
 * Signals a whole process group. Returns true when at least one process got it; ESRCH (the
 * group is already empty) is normal and returns false.
 */
export function killGroup(pgid: number | undefined, signal: NodeJS.Signals, log?: Logger): boolean {
  // kill(-1) would signal every process we may signal, and kill(-0) our own group.
  if (pgid === undefined || !Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') log?.warn({ err, pgid, signal }, 'could not signal the handler process group');
    return false;
  }
}
