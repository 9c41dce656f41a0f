/**
 * From a database row (snake_case columns, as both SQL stores name them) to the records the
 * store interface hands out. One mapper for SQLite and PostgreSQL: the tables have the same
 * columns, times arrive as ISO-8601 text from both (PostgreSQL's pool parses TIMESTAMPTZ into
 * it, see postgres/pool.ts) and BIGINT as a JS number, so the two stores agree row for row.
 */
import { idempotencyKey } from './idempotency.js';
import type { AttemptRecord, Claim, ExpiredClaim, FileRecord, Status, Tombstone, WorkerRecord } from './types.js';

export type Row = Record<string, unknown>;

const text = (v: unknown): string | null => (v as string | null | undefined) ?? null;

export function toClaim(r: Row, leaseExpiresAt: number): Claim {
  const fileUrl = String(r.file_url);
  const version = Number(r.version);
  return {
    fileUrl,
    fileType: String(r.file_type),
    version,
    attempt: Number(r.attempts),
    retryCount: Number(r.retry_count),
    token: String(r.claim_token),
    fingerprint: String(r.fingerprint),
    leaseExpiresAt,
    idempotencyKey: idempotencyKey(fileUrl, version),
  };
}

/** A processing row whose lease ran out, as the sweep hands it to onExpired (`status`: where it goes). */
export function toExpired(r: Row, status: ExpiredClaim['status']): ExpiredClaim {
  return {
    fileUrl: String(r.file_url),
    version: Number(r.version),
    attempt: Number(r.attempts),
    token: String(r.claim_token),
    workerId: (r.processed_by as string | null) ?? null,
    handlerPid: (r.handler_pid as number | null) ?? null,
    status,
  };
}

export function toRecord(r: Row): FileRecord {
  return {
    fileUrl: String(r.file_url),
    fileType: String(r.file_type),
    fileTimestamp: String(r.file_timestamp),
    status: r.status as Status,
    recordsTotal: Number(r.records_total),
    recordsFiltered: Number(r.records_filtered),
    recordsPersisted: Number(r.records_persisted),
    processingTimeMs: Number(r.processing_time_ms),
    errorMessage: text(r.error_message),
    retryCount: Number(r.retry_count),
    processedBy: text(r.processed_by),
    startedAt: text(r.started_at),
    completedAt: text(r.completed_at),
    createdAt: String(r.created_at),
    version: Number(r.version),
    attempts: Number(r.attempts),
    fingerprint: String(r.fingerprint),
    fileSize: Number(r.file_size),
    claimToken: text(r.claim_token),
    dueAt: text(r.due_at),
    handlerPid: (r.handler_pid as number | null | undefined) ?? null,
    afterAction: text(r.after_action),
    updatedAt: String(r.updated_at),
  };
}

export function toAttempt(r: Row): AttemptRecord {
  return {
    fileUrl: String(r.file_url),
    version: Number(r.version),
    attempt: Number(r.attempt),
    workerId: String(r.worker_id),
    startedAt: String(r.started_at),
    endedAt: text(r.ended_at),
    outcome: String(r.outcome),
    errorMessage: text(r.error_message),
    durationMs: (r.duration_ms as number | null | undefined) ?? null,
    afterAction: text(r.after_action),
  };
}

export function toTombstone(r: Row): Tombstone {
  return {
    fileUrl: String(r.file_url),
    fingerprint: String(r.fingerprint),
    version: Number(r.version),
    status: String(r.status),
    purgedAt: String(r.purged_at),
  };
}

/** A requeue's note in the history (after_action of its row) when the file was put back first. */
export function movedBackLabel(from: string): string {
  return `moved back from ${from}`;
}

/** A revive's note in the history: the purge it undid. */
export function tombstoneLiftedLabel(t: Tombstone): string {
  return `tombstone lifted (purged ${t.purgedAt} as ${t.status})`;
}

export function toWorker(r: Row): WorkerRecord {
  return {
    workerId: String(r.worker_id),
    host: String(r.host),
    pid: Number(r.pid),
    startedAt: String(r.started_at),
    heartbeatAt: String(r.heartbeat_at),
    mode: String(r.mode),
    modeSince: text(r.mode_since),
    modeReason: text(r.mode_reason),
  };
}

/** Milliseconds from an ISO `started_at` to `now` (null when the row has none). */
export function durationOf(startedAt: unknown, now: number): number | null {
  if (typeof startedAt !== 'string') return null;
  const t = Date.parse(startedAt);
  return Number.isNaN(t) ? null : Math.max(0, now - t);
}
