import { iso } from './time.js';
import { type AttemptRecord, REQUEUED, type StoreStats } from './types.js';

/** A history row with the claim token that ended it (recordAfterAction finds it by that). */
interface StoredAttempt extends AttemptRecord {
  token: string | null;
}

/** What a history row copies from its file's row. */
export interface AttemptOf {
  fileUrl: string;
  version: number;
  attempts: number;
  startedAt: string | null;
  claimToken: string | null;
}

type RecentOutcomes = Pick<StoreStats, 'completedLastMinute' | 'completedLastHour' | 'failedLastMinute' | 'failedLastHour'>;

/**
 * The memory store's file_attempts: per file, its ended attempts and requeue events in the
 * order they were added (SQLite's id order).
 */
export class MemoryHistory {
  private readonly byFile = new Map<string, StoredAttempt[]>();

  /** The end of the attempt the row's claim is making now. */
  add(r: AttemptOf, workerId: string, endedAt: string, outcome: string, error: string | null, durationMs: number | null, afterAction: string | null): void {
    this.of(r.fileUrl).push({
      fileUrl: r.fileUrl,
      version: r.version,
      attempt: r.attempts,
      workerId,
      startedAt: r.startedAt ?? endedAt,
      endedAt,
      outcome,
      errorMessage: error,
      durationMs,
      afterAction,
      token: r.claimToken,
    });
  }

  /** A requeue in the history: no claim token, no end (see REQUEUED). */
  addEvent(r: AttemptOf, by: string, at: string, note: string | null): void {
    this.of(r.fileUrl).push({
      fileUrl: r.fileUrl, version: r.version, attempt: r.attempts, workerId: by, startedAt: at, endedAt: null,
      outcome: REQUEUED, errorMessage: null, durationMs: null, afterAction: note, token: null,
    });
  }

  /** The after-action of the attempt a claim token ended. */
  recordAfterAction(fileUrl: string, token: string, done: string): void {
    for (const a of this.byFile.get(fileUrl) ?? []) if (a.token === token) a.afterAction = done;
  }

  /** A file's history, ORDER BY version, attempt, id. */
  list(fileUrl: string): AttemptRecord[] {
    const list = (this.byFile.get(fileUrl) ?? []).slice();
    // The array is in id order already, and sort is stable.
    list.sort((a, b) => a.version - b.version || a.attempt - b.attempt);
    return list.map(({ token: _token, ...a }) => a);
  }

  all(): AttemptRecord[] {
    return [...this.byFile.values()].flat();
  }

  delete(fileUrl: string): void {
    this.byFile.delete(fileUrl);
  }

  /** Completions and failures (not releases) that ended in the last minute and the last hour. */
  recent(now: number): RecentOutcomes {
    const minute = iso(now - 60_000);
    const hour = iso(now - 3_600_000);
    const s = { completedLastMinute: 0, completedLastHour: 0, failedLastMinute: 0, failedLastHour: 0 };
    for (const list of this.byFile.values()) {
      for (const a of list) {
        if (a.endedAt === null || a.endedAt < hour) continue;
        const recent = a.endedAt >= minute;
        if (a.outcome === 'completed') {
          s.completedLastHour++;
          if (recent) s.completedLastMinute++;
        } else if (a.outcome !== 'released') {
          s.failedLastHour++;
          if (recent) s.failedLastMinute++;
        }
      }
    }
    return s;
  }

  private of(fileUrl: string): StoredAttempt[] {
    let list = this.byFile.get(fileUrl);
    if (!list) this.byFile.set(fileUrl, (list = []));
    return list;
  }
}
