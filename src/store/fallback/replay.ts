import type { SqliteDatabase } from '../open-database.js';
import { classifySqliteError } from '../sqlite-errors.js';
import { iso } from '../time.js';
import { failureAfterAction, failureCompletedAt } from '../rules/transitions.js';
import { REQUEUED } from '../types.js';
import type { JournalEntry } from './journal.js';
import { stillHeld } from './fencing.js';

/**
 * Applying fallback journal entries to the database: called inside one IMMEDIATE transaction,
 * so that a replay is all or nothing.
 *
 * Idempotent: every claim token ends in exactly one attempt row (completed, failed, dead,
 * released, lease_expired, conflict ...), so an entry whose token already has an attempt row
 * was replayed before (a crash between the commit and the journal's removal) and is skipped.
 *
 * When the database and a journal disagree, the outcome that reached the database first
 * stays: a file completed in the database and also in a journal under another token keeps the
 * database's row, and the journal's completion is recorded in file_attempts as outcome
 * 'conflict' (with who and when), so that an operator can see that the file ran twice.
 *
 * Fencing: a replayed failure, expiry or release never overrides a newer claim in the
 * database (one that started after ours and is still running, or ended with an attempt row of
 * its own): the database's newer state wins and the journal's outcome is recorded as
 * 'conflict'. A replayed completion still wins over such a claim: it was fenced when it was
 * written (see fencing.ts), the file may already have been moved, and the newer claimer was
 * told to give the file back by the completion's marker.
 *
 * Attempt numbers: (file, version, attempt) names one claim. A degraded worker numbers its
 * attempts from what it could read; the database may have handed out the same number to
 * another claim meanwhile. Such an entry is renumbered past every number the file's version
 * has, consistently for all entries of its token, and the row's counter is raised so that the
 * database's next claim does not reuse it.
 */

export interface ReplayStats {
  applied: number;
  skipped: number;
  conflicts: number;
  /** Rows that the database did not have at all (lost to salvage, or discovered while degraded). */
  inserted: number;
  /** Entries whose attempt number the database had given to another claim: renumbered. */
  renumbered: number;
}

export function emptyStats(): ReplayStats {
  return { applied: 0, skipped: 0, conflicts: 0, inserted: 0, renumbered: 0 };
}

interface Row {
  file_url: string;
  status: string;
  version: number;
  attempts: number;
  retry_count: number;
  fingerprint: string;
  claim_token: string | null;
  processed_by: string | null;
  started_at: string | null;
  due_at: string | null;
}

/** An in-memory claim of this process, written into the database as 'processing' at recovery. */
export interface CarriedClaim {
  fileUrl: string;
  fileType: string;
  fileTimestamp: string;
  fingerprint: string;
  fileSize: number;
  version: number;
  attempt: number;
  retryCount: number;
  token: string;
  workerId: string;
  startedAt: string;
  leaseExpiresAt: number;
  handlerPid: number | null;
}

/**
 * Apply journal entries and carried claims with `replayer`, inside the caller's transaction.
 * An entry that fails with an error that is not about the database (a bad entry) is reported
 * and skipped; a database error ends the transaction. Returns the tokens of carried claims the
 * database no longer gives this process.
 */
export function applyAll(
  replayer: Replayer,
  entries: readonly JournalEntry[],
  carried: readonly CarriedClaim[],
  onEntryError: (err: unknown, e: JournalEntry) => void,
): Set<string> {
  const lostTokens = new Set<string>();
  for (const e of entries) {
    try {
      replayer.apply(e);
    } catch (err) {
      if (classifySqliteError(err) !== 'other') throw err;
      onEntryError(err, e);
    }
  }
  for (const c of carried) if (!replayer.carry(c)) lostTokens.add(c.token);
  return lostTokens;
}

export class Replayer {
  private readonly s;
  readonly stats = emptyStats();
  /** Claim token -> the attempt number it got here, when the journal's number was taken. */
  private readonly numbers = new Map<string, number>();
  /**
   * updated_at of every row written here: the replay's time, not the entry's. The row's copies
   * must be in write order by it; salvage picks the newest copy of a row by it (salvage.ts).
   */
  private readonly written: string;

  constructor(
    db: SqliteDatabase,
    private readonly now: number,
  ) {
    this.written = iso(now);
    // Over 60 lines only for its table of statements, one entry each (as sqlite-statements.ts).
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      get: p(`SELECT file_url, status, version, attempts, retry_count, fingerprint, claim_token, processed_by, started_at, due_at
              FROM file_checkpoints WHERE file_url = ?`),
      tomb: p('SELECT fingerprint, version FROM file_tombstones WHERE file_url = ?'),
      tokenEnded: p('SELECT 1 FROM file_attempts WHERE file_url = ? AND claim_token = ? LIMIT 1'),
      numberTaken: p('SELECT 1 FROM file_attempts WHERE file_url = ? AND version = ? AND attempt = ? AND claim_token IS NOT ? LIMIT 1'),
      maxNumber: p('SELECT max(attempt) AS m FROM file_attempts WHERE file_url = ? AND version = ?'),
      raiseCounter: p(
        `UPDATE file_checkpoints SET attempts = @attempt
         WHERE file_url = @fileUrl AND version = @version AND attempts < @attempt
           AND (status <> 'processing' OR claim_token = @token)`,
      ),
      laterClaimEnded: p(
        `SELECT 1 FROM file_attempts WHERE file_url = ? AND version >= ? AND claim_token IS NOT ? AND started_at > ?
           AND outcome NOT IN ('released', 'lost', 'conflict', '${REQUEUED}') LIMIT 1`,
      ),
      insert: p(
        `INSERT INTO file_checkpoints (file_url, file_type, file_timestamp, status, fingerprint, file_size, version, attempts,
           retry_count, claim_token, processed_by, started_at, due_at, created_at, updated_at)
         VALUES (@fileUrl, @fileType, @fileTimestamp, 'pending', @fingerprint, @fileSize, @version, @attempt,
           @retryCount, NULL, NULL, NULL, @due, @at, @at)`,
      ),
      toProcessing: p(
        `UPDATE file_checkpoints SET status = 'processing', claim_token = @token, processed_by = @workerId,
           started_at = @startedAt, due_at = @lease, attempts = CASE WHEN version < @version THEN @attempt ELSE max(attempts, @attempt) END,
           retry_count = CASE WHEN version < @version THEN @retryCount ELSE max(retry_count, @retryCount) END,
           version = @version, fingerprint = @fingerprint, handler_pid = @handlerPid, updated_at = @written
         WHERE file_url = @fileUrl`,
      ),
      toCompleted: p(
        `UPDATE file_checkpoints SET status = 'completed', claim_token = @token, processed_by = @workerId,
           started_at = @startedAt, attempts = CASE WHEN version < @version THEN @attempt ELSE max(attempts, @attempt) END,
           version = @version, fingerprint = @fingerprint, records_total = @total, records_filtered = @filtered, records_persisted = @persisted,
           processing_time_ms = @durationMs, completed_at = @endedAt, after_action = @afterAction,
           error_message = NULL, due_at = NULL, handler_pid = NULL, updated_at = @written
         WHERE file_url = @fileUrl`,
      ),
      toFailed: p(
        `UPDATE file_checkpoints SET status = @status, claim_token = @token, processed_by = @workerId,
           started_at = @startedAt, attempts = CASE WHEN version < @version THEN @attempt ELSE max(attempts, @attempt) END,
           version = @version, fingerprint = @fingerprint, retry_count = @retryCount, due_at = @due, error_message = @error, processing_time_ms = @durationMs,
           completed_at = @completedAt, handler_pid = NULL, after_action = @afterAction, updated_at = @written
         WHERE file_url = @fileUrl`,
      ),
      toPending: p(
        `UPDATE file_checkpoints SET status = 'pending', due_at = @due, handler_pid = NULL, updated_at = @written
         WHERE file_url = @fileUrl AND claim_token = @token AND status = 'processing'`,
      ),
      attempt: p(
        `INSERT INTO file_attempts (file_url, version, attempt, worker_id, claim_token, started_at, ended_at, outcome,
           error_message, duration_ms, after_action)
         VALUES (@fileUrl, @version, @attempt, @workerId, @token, @startedAt, @endedAt, @outcome, @error, @durationMs, @afterAction)`,
      ),
    };
  }

  private row(fileUrl: string): Row | undefined {
    return this.s.get.get(fileUrl) as Row | undefined;
  }

  private tokenEnded(fileUrl: string, token: string): boolean {
    return this.s.tokenEnded.get(fileUrl, token) !== undefined;
  }

  /** Make sure a row exists (the database may have lost it to salvage); returns it. */
  private ensureRow(e: { fileUrl: string; fileType: string; fileTimestamp: string; fingerprint: string; fileSize: number; version: number; attempt: number; retryCount: number; at: number }): Row {
    const r = this.row(e.fileUrl);
    if (r) return r;
    this.s.insert.run({
      fileUrl: e.fileUrl,
      fileType: e.fileType,
      fileTimestamp: e.fileTimestamp,
      fingerprint: e.fingerprint,
      fileSize: e.fileSize,
      version: e.version,
      attempt: Math.max(0, e.attempt - 1),
      retryCount: e.retryCount,
      due: iso(e.at),
      at: iso(e.at),
    });
    this.stats.inserted++;
    return this.row(e.fileUrl)!;
  }

  private addAttempt(a: {
    fileUrl: string;
    version: number;
    attempt: number;
    workerId: string;
    token: string;
    startedAt: string;
    endedAt: string;
    outcome: string;
    error?: string | null;
    durationMs?: number | null;
    afterAction?: string | null;
  }): void {
    this.s.attempt.run({ error: null, durationMs: null, afterAction: null, ...a });
    this.s.raiseCounter.run({ fileUrl: a.fileUrl, version: a.version, attempt: a.attempt, token: a.token });
  }

  /**
   * The entry with the attempt number its claim gets in the database: its own, unless the
   * database gave that number to another claim (an attempt row, or the claim holding the row).
   */
  private numbered<E extends { fileUrl: string; version: number; attempt: number; token: string }>(e: E): E {
    const known = this.numbers.get(e.token);
    if (known !== undefined) return known === e.attempt ? e : { ...e, attempt: known };
    const r = this.row(e.fileUrl);
    const sameVersion = r !== undefined && r.version === e.version;
    const heldByOther = sameVersion && r.status === 'processing' && r.claim_token !== e.token && r.attempts === e.attempt;
    const taken = this.s.numberTaken.get(e.fileUrl, e.version, e.attempt, e.token) !== undefined;
    if (!heldByOther && !taken) {
      this.numbers.set(e.token, e.attempt);
      return e;
    }
    const max = (this.s.maxNumber.get(e.fileUrl, e.version) as { m: number | null }).m ?? 0;
    const attempt = Math.max(max, sameVersion ? r.attempts : 0, e.attempt) + 1;
    this.numbers.set(e.token, attempt);
    this.stats.renumbered++;
    return { ...e, attempt };
  }

  /**
   * A claim in the database newer than the entry's: it started after the entry's claim did and
   * is still running, or it ended with an outcome of its own (a claim that was only given back
   * at once, for a marker, left no attempt row and does not count).
   */
  private newerClaim(r: Row, e: { token: string; version: number; startedAt: string }): boolean {
    if (r.claim_token === e.token) return false;
    const ours = Date.parse(e.startedAt);
    if (r.status === 'processing') {
      const lease = r.due_at === null ? 0 : Date.parse(r.due_at);
      const started = r.started_at === null ? 0 : Date.parse(r.started_at);
      if (lease > this.now || started > ours) return true;
    }
    return this.laterClaimEnded(r, e);
  }

  /** A claim begun after the entry's that ended with an outcome of its own. */
  private laterClaimEnded(r: Row, e: { token: string; version: number; startedAt: string }): boolean {
    if (r.claim_token === e.token) return false;
    return this.s.laterClaimEnded.get(r.file_url, e.version, e.token, e.startedAt) !== undefined;
  }

  apply(e: JournalEntry): void {
    switch (e.t) {
      case 'claim':
        return this.claim(e);
      case 'complete':
        return this.complete(e);
      case 'fail':
        return this.fail(e);
      case 'release':
        return this.release(e);
      case 'expired':
        return this.expired(e);
    }
  }

  private claim(e0: Extract<JournalEntry, { t: 'claim' }>): void {
    const r0 = this.row(e0.fileUrl);
    if ((r0 && r0.claim_token === e0.token) || this.tokenEnded(e0.fileUrl, e0.token)) {
      this.stats.skipped++;
      return;
    }
    const e = this.numbered(e0);
    if (!r0) {
      const tomb = this.s.tomb.get(e.fileUrl) as { fingerprint: string } | undefined;
      if (tomb && tomb.fingerprint === e.fingerprint) {
        this.stats.skipped++;
        return;
      }
    }
    const r = r0 ?? this.ensureRow(e);
    // Only a row nobody else holds or finished takes the claim; later entries settle the rest.
    // Nor one that a claim begun after this one has moved on since: reopened, it went back to
    // processing under a lapsed token, and the sweep gave that worker's attempt number a second
    // outcome (CI soak).
    if ((r.status === 'pending' || r.status === 'failed') && r.version <= e.version && !this.newerClaim(r, e)) {
      this.s.toProcessing.run({
        written: this.written,
        fileUrl: e.fileUrl, token: e.token, workerId: e.workerId, startedAt: e.startedAt, lease: iso(e.leaseExpiresAt),
        attempt: e.attempt, retryCount: e.retryCount, version: e.version, fingerprint: e.fingerprint, handlerPid: null,
      });
      this.stats.applied++;
    } else {
      this.stats.skipped++;
    }
  }

  /**
   * Decide how an outcome meets the row. 'token': the row is held by this very claim. 'free':
   * nobody finished this version, take it. 'history': the row is about a newer version, record
   * the attempt only. 'conflict': this version already has another final outcome.
   */
  private relation(r: Row, e: { token: string; version: number; fingerprint: string }): 'token' | 'free' | 'history' | 'conflict' {
    if (r.claim_token === e.token && r.status === 'processing') return 'token';
    if (r.version > e.version) return 'history';
    if (r.status === 'completed' || r.status === 'dead') {
      // A newer version of the file finished while degraded: it replaces the old outcome.
      if (r.version < e.version && r.fingerprint !== e.fingerprint) return 'free';
      return 'conflict';
    }
    return 'free';
  }

  /** The row was held by another token that this outcome overrides: end that attempt in the history. */
  private supersede(r: Row, by: string, at: number): void {
    if (r.status !== 'processing' || !r.claim_token || this.tokenEnded(r.file_url, r.claim_token)) return;
    this.addAttempt({
      fileUrl: r.file_url, version: r.version, attempt: r.attempts, workerId: r.processed_by ?? '?', token: r.claim_token,
      startedAt: r.started_at ?? iso(at), endedAt: iso(at), outcome: 'lost',
      error: `claim superseded by an outcome of ${by} replayed from the fallback journal`,
    });
  }

  private complete(e0: Extract<JournalEntry, { t: 'complete' }>): void {
    if (this.tokenEnded(e0.fileUrl, e0.token)) {
      this.stats.skipped++;
      return;
    }
    const e = this.numbered(e0);
    const r = this.ensureRow(e);
    const rel = this.relation(r, e);
    const endedAt = iso(e.at);
    const base = {
      fileUrl: e.fileUrl, version: e.version, attempt: e.attempt, workerId: e.workerId, token: e.token,
      startedAt: e.startedAt, endedAt, durationMs: Math.round(e.stats.durationMs), afterAction: e.afterAction,
    };
    if (rel === 'token' || rel === 'free') {
      if (rel === 'free') this.supersede(r, e.workerId, e.at);
      this.s.toCompleted.run({
        written: this.written,
        fileUrl: e.fileUrl, token: e.token, workerId: e.workerId, startedAt: e.startedAt, attempt: e.attempt, version: e.version,
        fingerprint: e.fingerprint, total: e.stats.totalRows, filtered: e.stats.filteredRows, persisted: e.stats.persistedRows,
        durationMs: Math.round(e.stats.durationMs), endedAt, afterAction: e.afterAction,
      });
      this.addAttempt({ ...base, outcome: 'completed' });
      this.stats.applied++;
    } else if (rel === 'history') {
      this.addAttempt({ ...base, outcome: 'completed' });
      this.stats.applied++;
    } else {
      this.addAttempt({
        ...base,
        outcome: 'conflict',
        error: `completed by ${e.workerId} at ${endedAt} while the database was unavailable, but the database already had outcome '${r.status}' (token ${r.claim_token ?? '-'}); kept the outcome recorded first`,
      });
      this.stats.conflicts++;
    }
  }

  private fail(e0: Extract<JournalEntry, { t: 'fail' }>): void {
    if (this.tokenEnded(e0.fileUrl, e0.token)) {
      this.stats.skipped++;
      return;
    }
    const e = this.numbered(e0);
    const r = this.ensureRow(e);
    // A failure never overrides a newer claim: the database's newer state wins. A live claim
    // does not count against a dead outcome, as against a completion: made while this outcome's
    // marker stood, it is one its screen gives back or finds superseded (FallbackStore). Kept,
    // it left the file, already moved to dead/, to be claimed again and recorded "vanished"
    // (60-second soak). After a retryable failure a newer claim is the retry.
    const newer = e.status === 'dead' ? this.laterClaimEnded(r, e) : this.newerClaim(r, e);
    const rel = r.version === e.version && newer ? 'conflict' : this.relation(r, e);
    const endedAt = iso(e.at);
    const base = {
      fileUrl: e.fileUrl, version: e.version, attempt: e.attempt, workerId: e.workerId, token: e.token,
      startedAt: e.startedAt, endedAt, durationMs: Math.round(e.durationMs), error: e.error,
    };
    if (rel === 'token' || rel === 'free') {
      if (rel === 'free') this.supersede(r, e.workerId, e.at);
      this.s.toFailed.run({
        written: this.written,
        fileUrl: e.fileUrl, status: e.status, token: e.token, workerId: e.workerId, startedAt: e.startedAt, attempt: e.attempt,
        version: e.version, fingerprint: e.fingerprint, retryCount: e.retryCount, due: e.dueAt === null ? null : iso(e.dueAt),
        error: e.error, durationMs: Math.round(e.durationMs), completedAt: failureCompletedAt(e.status, endedAt), endedAt,
        afterAction: failureAfterAction(e.status, e.afterAction),
      });
      this.stats.applied++;
    } else if (rel === 'conflict') {
      this.stats.conflicts++;
    }
    this.addAttempt({ ...base, outcome: rel === 'conflict' ? 'conflict' : e.outcome, afterAction: rel === 'conflict' ? null : failureAfterAction(e.status, e.afterAction) });
  }

  private release(e0: Extract<JournalEntry, { t: 'release' }>): void {
    if (this.tokenEnded(e0.fileUrl, e0.token)) {
      this.stats.skipped++;
      return;
    }
    const e = this.numbered(e0);
    const r = this.row(e.fileUrl);
    if (r) this.s.toPending.run({ fileUrl: e.fileUrl, token: e.token, due: iso(e.at), written: this.written });
    this.addAttempt({
      fileUrl: e.fileUrl, version: e.version, attempt: e.attempt, workerId: e.workerId, token: e.token,
      startedAt: e.startedAt, endedAt: iso(e.at), outcome: 'released',
    });
    this.stats.applied++;
  }

  private expired(e0: Extract<JournalEntry, { t: 'expired' }>): void {
    if (this.tokenEnded(e0.fileUrl, e0.token)) {
      this.stats.skipped++;
      return;
    }
    const e = this.numbered(e0);
    const r = this.row(e.fileUrl);
    if (r && r.claim_token === e.token && r.status === 'processing') {
      this.s.toFailed.run({
        written: this.written,
        fileUrl: e.fileUrl, status: e.status, token: e.token, workerId: e.workerId, startedAt: e.startedAt, attempt: e.attempt,
        version: r.version, fingerprint: r.fingerprint, retryCount: e.retryCount, due: e.dueAt === null ? null : iso(e.dueAt),
        error: e.error, durationMs: 0, completedAt: failureCompletedAt(e.status, iso(e.at)), endedAt: iso(e.at), afterAction: null,
      });
    }
    this.addAttempt({
      fileUrl: e.fileUrl, version: e.version, attempt: e.attempt, workerId: e.workerId, token: e.token,
      startedAt: e.startedAt, endedAt: iso(e.at), outcome: 'lease_expired', error: e.error,
    });
    this.stats.applied++;
  }

  /**
   * Write one of this process's open claims into the database as 'processing' under its own
   * token, so the runner's later heartbeat/complete/fail (which name that token) work against
   * the database. False: the file was finished by someone else meanwhile; the claim is lost.
   */
  carry(c0: CarriedClaim): boolean {
    // A lease that ran out (the process was stopped or starved past it) no longer protects the
    // claim: a normal-mode worker may have passed its marker, run the file and moved it. Carried
    // anyway, it would reopen a finished row (30-minute soak). Lost instead.
    if (!stillHeld(c0.leaseExpiresAt, this.now)) return false;
    const r0 = this.row(c0.fileUrl);
    const c = r0 && r0.claim_token === c0.token ? c0 : this.numbered(c0);
    if (r0 && r0.claim_token === c.token && r0.status === 'processing') {
      this.s.toProcessing.run(this.carryArgs(c));
      return true;
    }
    if (this.tokenEnded(c.fileUrl, c.token)) return false;
    const r = r0 ?? this.ensureRow({ ...c, at: this.now });
    if (r.version > c.version) return false;
    // Finished under this version number, whatever content it saw: a degraded worker numbers a
    // file it saw change as a new version, so the same number with another fingerprint is an
    // older look at the file (same seed: the file was rewritten after this claim), not newer.
    if ((r.status === 'completed' || r.status === 'dead') && r.version === c.version) return false;
    // Pending, failed, or held under another token: our claim marker stood the whole time, so
    // the other holder found it and gave the file back without running it (see FallbackStore).
    this.supersede(r, c.workerId, this.now);
    this.s.toProcessing.run(this.carryArgs(c));
    this.stats.applied++;
    return true;
  }

  private carryArgs(c: CarriedClaim) {
    return {
      fileUrl: c.fileUrl, token: c.token, workerId: c.workerId, startedAt: c.startedAt, lease: iso(c.leaseExpiresAt),
      attempt: c.attempt, retryCount: c.retryCount, version: c.version, fingerprint: c.fingerprint, handlerPid: c.handlerPid,
      written: this.written,
    };
  }
}
