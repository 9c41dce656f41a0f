/**
 * SIGTERM/SIGINT (or the embedder's AbortSignal): the first stops claiming and lets running
 * handlers finish within the grace period; a second gives their files back at once.
 */
import type { Logger } from 'pino';

export interface StopRequestDeps {
  log: Logger;
  /** Listen to SIGTERM and SIGINT (the abort signal is always listened to). */
  handleSignals: boolean;
  signal?: AbortSignal;
  /** The grace period now (a reload may change it), for the log line. */
  graceMs: () => number;
  /** The second signal: stop the handlers now. */
  abortNow: () => void;
}

export interface StopRequest {
  /** Resolves at the first signal. */
  readonly stopped: Promise<void>;
  /** Stops listening to the process's signals. */
  close(): void;
}

export function listenForStop(deps: StopRequestDeps): StopRequest {
  const { log } = deps;
  let stopRequested = false;
  let resolveStop!: () => void;
  const stopped = new Promise<void>((r) => (resolveStop = r));
  const onSignal = (sig: NodeJS.Signals) => {
    if (!stopRequested) {
      stopRequested = true;
      log.info({ signal: sig, graceMs: deps.graceMs() }, 'stopping: no new claims; running handlers get the grace period');
      resolveStop();
    } else {
      log.warn({ signal: sig }, 'second signal: stopping handlers now and giving their files back');
      deps.abortNow();
    }
  };
  if (deps.handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  deps.signal?.addEventListener('abort', () => onSignal('SIGTERM'), { once: true });
  return {
    stopped,
    close() {
      if (!deps.handleSignals) return;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
