import type { Logger } from 'pino';

/**
 * Store errors of the claim loop and the lease renewal, logged once per burst: a locked
 * database would otherwise log 4 lines a second (one per idle poll).
 */
export class StoreErrorLog {
  /** The runner's clock when the last line was written; 0 after a success. */
  private lastLogged = 0;

  constructor(private readonly o: { logger: Logger; workerId: string; now: () => number }) {}

  error(err: unknown, what: string): void {
    const now = this.o.now();
    if (now - this.lastLogged < 10_000) return;
    this.lastLogged = now;
    this.o.logger.error({ err, workerId: this.o.workerId }, `${what} failed`);
  }

  /** The store answered again: the next error is a new burst. */
  reset(): void {
    this.lastLogged = 0;
  }
}
