/**
 * The logger factory. JSON lines on stdout (one object a line, for journald / jq / a log
 * shipper), or human-readable lines when stdout is a terminal.
 *
 * Writes go through pino.destination (sonic-boom) in SYNC mode by default, one write(2) per
 * line. Why not `sync: false`: with a background write in flight at exit, flushSync() writes
 * the rest of the buffer first and the in-flight chunk lands after it. Measured here: the
 * first smoke run to a file printed its 2nd line before its 1st, and 2 of 5 runs to a paused
 * pipe ended with lines out of order ("stopped" before "stopping" is the usual victim). The
 * price is small: 100,000 lines cost 6-12 us a line synchronously vs 7-14 us async (noisy,
 * and the async figure does not even include the write, deferred to exit). A reader that
 * stops reading stalls the daemon instead of growing its memory without bound.
 * `sync: false` remains an option for callers that log in bulk.
 *
 * Pretty output is pino-pretty's prettyFactory() applied in the same thread, in front of the
 * same destination: no worker-thread transport, so flushing works the same way in both formats.
 * Measured (test/unit/log.test.ts): 10,000 lines then exitAfterFlush() lost none, in both modes.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import pinoPretty from 'pino-pretty';
import type { LogFormat, LogLevel } from './config/types.js';

export type { Logger } from 'pino';

export interface CreateLoggerOptions {
  level: LogLevel;
  /** `auto` (default): pretty when the destination is a terminal, JSON otherwise. */
  format?: LogFormat;
  /**
   * A file descriptor (default 1, stdout), a file path (appended to, created 0640), or any
   * writable stream (tests). A stream is written to as is and is never pretty in `auto`.
   */
  destination?: number | string | NodeJS.WritableStream;
  /** Write each line at once (default true, see above); false buffers and writes in the background. */
  sync?: boolean;
  /**
   * The destination is a terminal and it went away (a write failed with EIO: the terminal was
   * closed). Called once; the failed writes are not thrown. Without it they are, as before.
   */
  onTerminalGone?: () => void;
}

/**
 * One line per event: the time, the level, the message and the fields as compact JSON. The
 * default layout put each field on a line of its own, about 12 lines per file handled.
 */
const PRETTY = {
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname',
  singleLine: true,
  // No key gets pino-pretty's multi-line error layout; `err` is printed inline like any field.
  errorLikeObjectKeys: [] as string[],
};

type Boom = ReturnType<typeof pino.destination>;

/** What pino writes to, when we built it: a sonic-boom, maybe behind the prettifier. */
interface FlushableStream extends DestinationStream {
  flushSync(): void;
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    // ISO time rather than epoch ms: read by people in journald and next to the store's
    // ISO-8601 timestamps; costs a Date#toISOString per line.
    timestamp: pino.stdTimeFunctions.isoTime,
    // "level":"warn" rather than 40: what jq filters, Loki labels and people grep for.
    formatters: { level: (label: string) => ({ level: label }) },
    // The cause chain as nested objects (err.cause.message, err.cause.code), not folded into one
    // message string as pino's default err serializer does: a shipper can then filter on
    // the cause's code (SQLITE_BUSY, ECONNREFUSED) without parsing text.
    serializers: { err: pino.stdSerializers.errWithCause },
  };
  const format = opts.format ?? 'auto';
  const dest = opts.destination ?? 1;

  if (typeof dest === 'object') {
    if (format !== 'pretty') return pino(options, dest as DestinationStream);
    const prettify = pinoPretty.prettyFactory({ ...PRETTY, colorize: false });
    return pino({ ...options, serializers: { err: errWithoutStack } }, { write: (line: string) => void dest.write(prettify(line)) });
  }

  // Open a path ourselves so that the descriptor exists before the first line: a sonic-boom
  // opening a path asynchronously throws from flushSync() until it is ready (docs/stack-behaviour.md), and
  // in sync mode it would throw on the first write.
  const fd = typeof dest === 'string' ? fs.openSync(dest, 'a', 0o640) : dest;
  const boom: Boom = pino.destination({ dest: fd, sync: opts.sync ?? true });
  if (opts.onTerminalGone && tty.isatty(fd)) watchTerminal(boom, opts.onTerminalGone);
  const pretty = format === 'pretty' || (format === 'auto' && tty.isatty(fd));
  if (!pretty) return pino(options, boom);

  const prettify = pinoPretty.prettyFactory({ ...PRETTY, colorize: tty.isatty(fd) });
  const stream: FlushableStream = {
    write: (line: string) => void boom.write(prettify(line)),
    flushSync: () => boom.flushSync(),
  };
  return pino({ ...options, serializers: { err: errWithoutStack } }, stream);
}

/**
 * On a terminal: the error and its causes without their stacks, so that the event stays on one
 * line (a stack is 10 lines per error, and each cause brings its own); the JSON format keeps them.
 */
function errWithoutStack(err: unknown): unknown {
  const strip = (e: unknown): unknown => {
    if (e === null || typeof e !== 'object') return e;
    const { stack: _stack, raw: _raw, ...rest } = e as Record<string, unknown>;
    if (rest.cause !== undefined) rest.cause = strip(rest.cause);
    return rest;
  };
  return strip(pino.stdSerializers.errWithCause(err as Error));
}

/**
 * A closed terminal makes every write fail with EIO, emitted as 'error' by sonic-boom, which
 * would end the process with a stack trace nobody can read. Report it once instead; anything
 * else stays an error as before.
 */
function watchTerminal(boom: Boom, onGone: () => void): void {
  let gone = false;
  boom.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EIO') throw err;
    if (gone) return;
    gone = true;
    // Nothing written from now on: a hung-up terminal's later writes can return EAGAIN, and
    // sonic-boom retries those in a sleep loop forever (seen: the process never exited).
    boom.write = () => true;
    boom.flushSync = () => undefined;
    onGone();
  });
}

/**
 * Writes every buffered line now, synchronously: call it right before process.exit(). Never
 * throws: a destination that is not open yet, already closed, or whose reader went away
 * (EPIPE) has nothing more to give at exit. Works on child loggers too (they share the stream).
 */
export function flushLogger(logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as Partial<FlushableStream> | undefined;
  if (typeof stream?.flushSync !== 'function') return;
  try {
    stream.flushSync();
  } catch {
    // Not ready, destroyed, or the pipe is gone: nothing else can be done on the way out.
  }
}

/** flushLogger(), then process.exit(code): the way out for every exit path of the daemon and CLI. */
export function exitAfterFlush(logger: Logger, code: number): never {
  flushLogger(logger);
  process.exit(code);
}
