/**
 * The JSON shapes the CLI prints (`--json`). They are spelled out here, field by field and in a
 * fixed order, rather than passing store records through: the store may grow internal fields
 * (the claim token is one, deliberately left out) without changing what scripts read.
 * Documented in docs/cli.md ("JSON output").
 */
import type { AttemptRecord, FileRecord } from '../store/types.js';

export interface FileJson {
  file: string;
  type: string;
  status: string;
  version: number;
  attempts: number;
  /** Failed attempts counted against the retry budget (retry_count; reset by requeue). */
  failures: number;
  records: { total: number; filtered: number; persisted: number };
  size: number;
  mtime: string;
  durationMs: number;
  error: string | null;
  processedBy: string | null;
  handlerPid: number | null;
  afterAction: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  /** pending: ready since; failed: next attempt; processing: lease expiry; else null. */
  dueAt: string | null;
  updatedAt: string;
}

export interface AttemptJson {
  version: number;
  attempt: number;
  worker: string;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  outcome: string;
  error: string | null;
  afterAction: string | null;
}

export function fileJson(r: FileRecord): FileJson {
  return {
    file: r.fileUrl,
    type: r.fileType,
    status: r.status,
    version: r.version,
    attempts: r.attempts,
    failures: r.retryCount,
    records: { total: r.recordsTotal, filtered: r.recordsFiltered, persisted: r.recordsPersisted },
    size: r.fileSize,
    mtime: r.fileTimestamp,
    durationMs: r.processingTimeMs,
    error: r.errorMessage,
    processedBy: r.processedBy,
    handlerPid: r.handlerPid,
    afterAction: r.afterAction,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    completedAt: r.completedAt,
    dueAt: r.dueAt,
    updatedAt: r.updatedAt,
  };
}

export function attemptJson(a: AttemptRecord): AttemptJson {
  return {
    version: a.version,
    attempt: a.attempt,
    worker: a.workerId,
    startedAt: a.startedAt,
    endedAt: a.endedAt,
    durationMs: a.durationMs,
    outcome: a.outcome,
    error: a.errorMessage,
    afterAction: a.afterAction,
  };
}
