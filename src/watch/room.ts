/**
 * The bound on files held in memory (waiting for stability or for the sink). A scan that finds
 * no room waits here until stability checks or the sink free some; an event finding no room is
 * dropped instead (event-dispatch.ts), and a rescan finds its file later.
 */
export interface RoomOptions {
  capacity: number;
  /** Slots in use now. */
  used: () => number;
  closed: () => boolean;
}

export class Room {
  private waiters: Array<() => void> = [];

  constructor(private readonly o: RoomOptions) {}

  has(): boolean {
    return this.o.used() < this.o.capacity;
  }

  wait(): Promise<void> {
    if (this.o.closed() || this.has()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes the waiting scans if there is room now (`all`: wake them regardless, at close). */
  release(all = false): void {
    if (this.waiters.length === 0 || (!all && !this.has())) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
