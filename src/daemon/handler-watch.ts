/**
 * A handler's program gone while running (an upgrade): claiming pauses for the files it runs,
 * which keep their retries. One monitor per program (the top-level handler's and each route's,
 * docs/routes.md): a route whose program is gone pauses alone. A reload replaces the monitors
 * with ones for the new programs.
 */
import { allHandlers } from '../config/routes.js';
import type { HandlerConfig, ResolvedConfig } from '../config/types.js';
import { availabilityFor, gateHandler, programKey, type DaemonAvailabilityOptions, type HandlerAvailability, type HandlerUnavailable } from '../run/handler-availability.js';
import type { Handler } from '../run/handler.js';
import { fallbackDirForConfig } from '../store/open-store.js';

export type HandlerWatchDeps = Omit<DaemonAvailabilityOptions, 'stateDir' | 'fileMode' | 'shown'>;

export class HandlerWatch {
  private availability = new Map<string, HandlerAvailability>();

  constructor(
    config: ResolvedConfig,
    private readonly deps: HandlerWatchDeps,
  ) {
    this.watch(config);
  }

  /** Why a program cannot run now (the first one found); null while all can (or nothing is watched). */
  get unavailable(): HandlerUnavailable | null {
    for (const a of this.availability.values()) if (a.unavailable !== null) return a.unavailable;
    return null;
  }

  /** True while the program of this handler is gone. */
  readonly pausedFor = (h: HandlerConfig): (() => boolean) => {
    const key = programKey(h);
    return () => key !== null && (this.availability.get(key)?.unavailable ?? null) !== null;
  };

  /** The handler as the runner should run it: given back unrun while its program is gone. */
  readonly gated = (h: Handler, config: HandlerConfig): Handler => {
    const key = programKey(config);
    const a = key === null ? undefined : this.availability.get(key);
    return a ? gateHandler(h, a) : h;
  };

  /** A reload: the programs of `config` are watched from now on (gate its handlers again). */
  readonly adopt = (config: ResolvedConfig): void => {
    this.close();
    this.availability = new Map();
    this.watch(config);
  };

  close(): void {
    for (const a of this.availability.values()) a.close();
  }

  private watch(config: ResolvedConfig): void {
    const stateDir = fallbackDirForConfig(config.database, config.fallbackDir);
    for (const { handler } of allHandlers(config)) {
      const key = programKey(handler);
      if (key === null || this.availability.has(key)) continue;
      const a = availabilityFor({ handler }, { ...this.deps, stateDir, fileMode: config.fileMode, shown: () => this.unavailable });
      if (a) this.availability.set(key, a);
    }
  }
}
