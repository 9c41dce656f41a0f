/**
 * The pieces of `activity()` (what `ckpt top` shows) that every store shares: the folder a file
 * is in, the order of the backlog, and the mapping of SQL rows (snake_case, as both SQL stores
 * name their columns) to the interface's records. The stores only run their queries.
 */
import type { Row } from './record.js';
import { iso } from './time.js';
import type { Activity, ActivityQuery, AttemptRecord, BacklogGroup, FileRecord, InFlightFile, RecentFailure } from './types.js';

/** The folder part of a stored path: everything up to the last `/` (`/` itself for a top-level file). */
export function folderOf(fileUrl: string): string {
  const i = fileUrl.lastIndexOf('/');
  return i <= 0 ? '/' : fileUrl.slice(0, i);
}

/** Largest backlog first, then folder and type in code-point order (the same in every store). */
export function byBacklog(a: BacklogGroup, b: BacklogGroup): number {
  const d = b.pending + b.retrying - (a.pending + a.retrying);
  if (d !== 0) return d;
  if (a.folder !== b.folder) return a.folder < b.folder ? -1 : 1;
  return a.fileType < b.fileType ? -1 : a.fileType > b.fileType ? 1 : 0;
}

const text = (v: unknown): string | null => (v as string | null | undefined) ?? null;

/**
 * A backlog row. The SQL stores group on the directory with its trailing slash (`/inbox/`, what
 * their string functions give); folderOf() has none, so it is cut here.
 */
export function toBacklogGroup(r: Row): BacklogGroup {
  const dir = String(r.folder);
  return {
    folder: dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir === '' ? '/' : dir,
    fileType: String(r.file_type),
    pending: Number(r.pending ?? 0),
    retrying: Number(r.retrying ?? 0),
    oldestPendingAt: text(r.oldest),
  };
}

export function toInFlight(r: Row): InFlightFile {
  return {
    fileUrl: String(r.file_url),
    fileType: String(r.file_type),
    workerId: text(r.processed_by),
    attempt: Number(r.attempts),
    startedAt: text(r.started_at),
    leaseExpiresAt: text(r.due_at),
  };
}

export function toRecentFailure(r: Row): RecentFailure {
  return {
    fileUrl: String(r.file_url),
    version: Number(r.version),
    attempt: Number(r.attempt),
    workerId: String(r.worker_id),
    endedAt: String(r.ended_at),
    outcome: String(r.outcome),
    errorMessage: text(r.error_message),
  };
}

/**
 * activity() over rows held in process memory (the memory store): the same answer the SQL
 * stores give, computed by walking the rows.
 */
/** activity() from rows in memory; the caller adds stats and workers. */
export function activityOf(rows: Iterable<FileRecord>, attempts: Iterable<AttemptRecord>, q: ActivityQuery): Omit<Activity, 'stats' | 'workers'> {
  const all = [...rows];
  const ended = [...attempts].filter((a): a is AttemptRecord & { endedAt: string } => a.endedAt !== null);
  const windows = q.windowsMs.map((windowMs) => {
    const since = iso(q.now - windowMs);
    const inWindow = ended.filter((a) => a.endedAt >= since);
    return {
      windowMs,
      discovered: all.filter((r) => r.createdAt >= since).length,
      completed: inWindow.filter((a) => a.outcome === 'completed').length,
      failed: inWindow.filter((a) => a.outcome !== 'completed' && a.outcome !== 'released').length,
    };
  });
  const groups = new Map<string, BacklogGroup>();
  for (const r of all) {
    if (r.status !== 'pending' && r.status !== 'failed') continue;
    const folder = folderOf(r.fileUrl);
    const key = `${folder}\u0000${r.fileType}`;
    const g = groups.get(key) ?? { folder, fileType: r.fileType, pending: 0, retrying: 0, oldestPendingAt: null };
    groups.set(key, g);
    if (r.status === 'failed') g.retrying++;
    else {
      g.pending++;
      if (r.dueAt !== null && (g.oldestPendingAt === null || r.dueAt < g.oldestPendingAt)) g.oldestPendingAt = r.dueAt;
    }
  }
  const inFlight = all
    .filter((r) => r.status === 'processing')
    .sort((a, b) => cmp(a.startedAt ?? '', b.startedAt ?? '') || cmp(a.fileUrl, b.fileUrl))
    .slice(0, q.limit)
    .map((r) => ({ fileUrl: r.fileUrl, fileType: r.fileType, workerId: r.processedBy, attempt: r.attempts, startedAt: r.startedAt, leaseExpiresAt: r.dueAt }));
  const failures = ended
    .filter((a) => a.outcome !== 'completed' && a.outcome !== 'released')
    .sort((a, b) => cmp(b.endedAt, a.endedAt))
    .slice(0, q.limit)
    .map((a) => ({ fileUrl: a.fileUrl, version: a.version, attempt: a.attempt, workerId: a.workerId, endedAt: a.endedAt, outcome: a.outcome, errorMessage: a.errorMessage }));
  return { windows, backlog: [...groups.values()].sort(byBacklog).slice(0, q.limit), inFlight, failures };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
