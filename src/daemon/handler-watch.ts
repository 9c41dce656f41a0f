/**
 * The handler's program gone while running (an upgrade): claiming pauses, the files keep their
 * retries. A reload that changes the handler replaces the monitor with one for the new program.
 */
import type { ResolvedConfig } from '../config/types.js';
import { availabilityFor, gateHandler, type DaemonAvailabilityOptions, type HandlerAvailability, type HandlerUnavailable } from '../run/handler-availability.js';
import type { Handler } from '../run/handler.js';
import { fallbackDirForConfig } from '../store/open-store.js';

export type HandlerWatchDeps = Omit<DaemonAvailabilityOptions, 'stateDir' | 'fileMode'>;

export class HandlerWatch {
  private availability: HandlerAvailability | null;

  constructor(
    config: ResolvedConfig,
    private readonly deps: HandlerWatchDeps,
  ) {
    this.availability = this.watch(config);
  }

  /** Why the program cannot run now; null while it can (or when nothing is watched). */
  get unavailable(): HandlerUnavailable | null {
    return this.availability?.unavailable ?? null;
  }

  /** The handler as the runner should run it: given back unrun while its program is gone. */
  readonly gated = (h: Handler): Handler => (this.availability ? gateHandler(h, this.availability) : h);

  /** A reload's new handler, watched under its config. */
  readonly adopt = (config: ResolvedConfig, h: Handler): Handler => {
    this.availability?.close();
    this.availability = this.watch(config);
    return this.gated(h);
  };

  close(): void {
    this.availability?.close();
  }

  private watch(config: ResolvedConfig): HandlerAvailability | null {
    return availabilityFor(config, { ...this.deps, stateDir: fallbackDirForConfig(config.database, config.fallbackDir), fileMode: config.fileMode });
  }
}
