/**
 * What a handler is: the context it runs with and the outcome it returns. Shared by the command
 * handler, the module handler and the runner; a file of its own so that the handlers need not
 * import the factory that picks between them (handler.ts).
 */
import type { Logger } from 'pino';
import type { RunStats } from './stats-line.js';

export interface HandlerContext {
  /** Absolute path of the file (the store's primary key). */
  fileUrl: string;
  fileType: string;
  /** The file's version in the store (a new content is a new version); part of the idempotency key. */
  version: number;
  /** 1-based run counter for this version of the file. */
  attempt: number;
  workerId: string;
  /** Stable for one version of one file: a sink can de-duplicate on it. */
  idempotencyKey: string;
  claimToken: string;
  /** Fires when the lease is lost or the daemon stops. */
  signal: AbortSignal;
  /** Child logger already carrying path/attempt/workerId. */
  logger: Logger;
  /**
   * Command handler only: the program is not started after this time (epoch ms, the lease the
   * claim holds when the run begins); the outcome is then a `spawn` failure.
   */
  startBy?: number;
  /** Command handler only: called with the process-group id right after the spawn. */
  onSpawn?: (pid: number) => void;
}

/**
 * `unavailable`: the program could not be started because it is gone (handler-availability.ts);
 * not the file's fault, so the claim is given back without counting an attempt.
 */
export type FailureKind = 'exit' | 'signal' | 'timeout' | 'aborted' | 'threw' | 'spawn' | 'unavailable';

export type HandlerOutcome =
  | { ok: true; stats: RunStats | null; durationMs: number }
  | { ok: false; permanent: boolean; kind: FailureKind; error: string; durationMs: number };

/** Runs the handler on one file. Never rejects: every failure is an outcome. */
export type Handler = (ctx: HandlerContext) => Promise<HandlerOutcome>;
