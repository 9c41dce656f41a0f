import type { MemoryStore } from '../memory-store.js';
import type { Activity, ActivityQuery, AttemptRecord, CheckpointStore, FileRecord, ListQuery, Status, StoreStats, Tombstone, WorkerRecord } from '../types.js';
import type { Looked } from './lookup.js';
import type { FallbackPrimary, Maybe } from './primary.js';

/** What reads while degraded need from the FallbackStore. */
export interface DegradedReadsDeps {
  db: FallbackPrimary;
  clock: () => number;
  /** The file's content is bad (CORRUPT/NOTADB). */
  corrupt: () => boolean;
  /** The file was replaced underneath (another process salvaged it). */
  replaced: () => boolean;
  /** The episode is a broken database, not a locked one. */
  broken: () => boolean;
}

/**
 * What may be read from the database while degraded, and the answers to reads: the database's
 * own answer when it can be read (a write lock does not stop a read), else, or merged with it,
 * what memory holds of this episode.
 */
export class DegradedReads {
  constructor(private readonly d: DegradedReadsDeps) {}

  /** The database may be read while degraded: not corrupt, not replaced, not broken and closed. */
  mayAsk(): boolean {
    return !(this.d.corrupt() || this.d.replaced() || (this.d.broken() && !this.d.db.store));
  }

  /**
   * What the database says about a file, or null when nobody can tell. A corrupt or replaced
   * file is not asked at all: a damaged index could answer "no such row" for a completed file.
   */
  looked(fileUrl: string, now: number): Maybe<Looked | null> {
    if (!this.mayAsk()) return null;
    return this.d.db.lookup(fileUrl, now);
  }

  /** A read against the database while degraded (works under a write lock), or null. */
  private async fromDatabase<T>(fn: (p: CheckpointStore) => Promise<T>): Promise<T | null> {
    if (!this.d.db.store || this.d.corrupt()) return null;
    return this.d.db.readWhileDegraded(fn);
  }

  async get(mem: MemoryStore, fileUrl: string): Promise<FileRecord | null> {
    const m = mem.peek(fileUrl);
    if (m) return m;
    return (await this.looked(fileUrl, this.d.clock()))?.row ?? null;
  }

  async tombstone(fileUrl: string): Promise<Tombstone | null> {
    return (await this.fromDatabase((p) => p.tombstone(fileUrl))) ?? null;
  }

  async list(mem: MemoryStore, q: ListQuery): Promise<FileRecord[]> {
    return (await this.fromDatabase((p) => p.list(q))) ?? mem.list(q);
  }

  async attempts(mem: MemoryStore, fileUrl: string): Promise<AttemptRecord[]> {
    return [...((await this.fromDatabase((p) => p.attempts(fileUrl))) ?? []), ...(await mem.attempts(fileUrl))];
  }

  async counts(mem: MemoryStore): Promise<Record<Status, number>> {
    return (await this.fromDatabase((p) => p.counts())) ?? mem.counts();
  }

  async stats(mem: MemoryStore, now: number): Promise<StoreStats> {
    return (await this.fromDatabase((p) => p.stats(now))) ?? mem.stats(now);
  }

  async activity(mem: MemoryStore, q: ActivityQuery): Promise<Activity> {
    const fromDb = await this.fromDatabase((p) => p.activity(q));
    const a = fromDb ?? (await mem.activity(q));
    // While degraded this process's own worker row is in memory: merged into the database's
    // workers that the same read returned (no second read of the database).
    return { ...a, workers: withMine(fromDb?.workers ?? [], await mem.workers()) };
  }

  /** The database's workers, with this process's own (from memory) in place of theirs. */
  async workers(mem: MemoryStore): Promise<WorkerRecord[]> {
    return withMine((await this.fromDatabase((p) => p.workers())) ?? [], await mem.workers());
  }
}

function withMine(fromDb: readonly WorkerRecord[], mine: readonly WorkerRecord[]): WorkerRecord[] {
  const ids = new Set(mine.map((w) => w.workerId));
  return [...fromDb.filter((w) => !ids.has(w.workerId)), ...mine].sort((a, b) => (a.workerId < b.workerId ? -1 : 1));
}
