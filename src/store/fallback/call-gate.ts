/**
 * Calls into a FallbackStore against its asynchronous work (PostgreSQL: the start, a recovery).
 * While such work runs, `held` is its promise and every call waits for it; the work in turn
 * waits until no degraded-mode call is in progress. With SQLite the work is synchronous and the
 * gate is never held.
 */
export class CallGate {
  /** The asynchronous work every new call waits for, or null. */
  held: Promise<void> | null = null;
  /** Degraded-mode calls in progress. */
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  /** Hold every new call until `work` settles (it must not reject). */
  hold(work: Promise<void>): void {
    this.held = work;
    void work.then(() => {
      if (this.held === work) this.held = null;
    });
  }

  /** Run one degraded-mode call, counted while it is in progress. */
  async degraded<T>(call: () => Promise<T> | T): Promise<T> {
    this.inFlight++;
    try {
      return await call();
    } finally {
      if (--this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Resolves once no degraded-mode call is in progress; null when none is now. */
  idle(): Promise<void> | null {
    if (this.inFlight === 0) return null;
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
