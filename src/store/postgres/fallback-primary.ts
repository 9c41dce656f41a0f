import type pg from 'pg';
import type { Expiring } from '../fallback/fencing.js';
import type { JournalEntry } from '../fallback/journal.js';
import type { Looked } from '../fallback/lookup.js';
import type { FallbackPrimary, ReplayOutcome } from '../fallback/primary.js';
import type { CarriedClaim } from '../fallback/replay.js';
import { toRecord } from '../record.js';
import { StoreUnavailableError } from '../sqlite-errors.js';
import { iso } from '../time.js';
import type { CheckpointStore, FileRecord } from '../types.js';
import { replayOnPostgres } from './fallback-replay.js';
import { quoteSchema } from './migrate.js';
import { toPgStoreError } from './pg-errors.js';
import { createPool } from './pool.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';

/**
 * After a failed round trip, degraded-mode look-ups answer from what this process knows for
 * this long without asking the server again: with the server gone, every file of a discovery
 * scan would otherwise wait for its own connection attempt (up to connectTimeoutMs each).
 */
const DOWN_HOLD_MS = 1_000;
/** Probe and look-up statements: a degraded daemon must not hang on a server that does not answer. */
const SIDE_TIMEOUT_MS = 2_000;

export interface PostgresPrimaryOptions extends PostgresStoreOptions {
  /**
   * Journals, claim markers and state files while the server is unreachable. Required: there
   * is no database file to put them beside. A local disk (see docs/postgresql.md: markers protect
   * this host only, and a network share would make them look shared when they are not).
   */
  fallbackDir: string;
}

/**
 * PostgreSQL behind a FallbackStore: the same degraded mode as a locked SQLite file (memory,
 * journal, claim markers, replay), with these differences:
 *
 * - Claim markers live on this host's disk: they keep two processes on THIS host from running
 *   the same file. Other hosts cannot see them; see "What a degraded host may run".
 * - Probe: `SELECT pg_is_in_recovery()` on a connection of its own (a standby is not writable),
 *   then the migrations check; no quick_check, snapshot or salvage (the server owns its files).
 * - Replay: one transaction, the journal's files locked with `SELECT ... FOR UPDATE` (see
 *   fallback-replay.ts), the same rules as SQLite.
 *
 * What a degraded host may run. While the server answers reads (a write-only failure, rare),
 * a look-up tells the file's state as on SQLite. While it answers nothing, nobody can tell
 * what the other hosts did, and the rule is:
 * - a file this process has discovered through the database (its row exists; another host may
 *   have run it, or be running it): not handed out until the server is back;
 * - a file this process first saw while degraded (new in the folder): handled, journaled, and
 *   replayed later. Another host that saw the same file may run it too: the ledger keeps the
 *   completion that reaches it first and records the other as a `conflict` attempt; handler
 *   side effects are at-least-once (the idempotency key is the same on both hosts).
 * - a process that starts while the server is unreachable knows nothing: it hands out nothing
 *   until the server is back (every file in the folder would otherwise be "new" to it,
 *   including all the completed ones).
 */
export class PostgresPrimary implements FallbackPrimary {
  readonly kind = 'postgres' as const;
  readonly location: string;
  readonly defaultFallbackDir: string;
  readonly pg: PostgresStore;
  private readonly side: pg.Pool;
  private readonly qs: string;
  private opened = false;
  /** Files this process discovered through the database (their rows exist). */
  private readonly known = new Set<string>();
  /** This process has seen the database take a discovery: it knows which files are new to it. */
  private sawDatabase = false;
  private downUntil = 0;

  constructor(opts: PostgresPrimaryOptions) {
    this.pg = new PostgresStore(opts);
    this.location = this.pg.target;
    this.defaultFallbackDir = opts.fallbackDir;
    this.qs = quoteSchema(this.pg.schema);
    this.side = createPool(
      { ...opts, maxConnections: 1, connectTimeoutMs: Math.min(opts.connectTimeoutMs ?? 5_000, SIDE_TIMEOUT_MS), statementTimeoutMs: SIDE_TIMEOUT_MS, applicationName: 'ckpt probe' },
      () => undefined,
    );
  }

  get store(): CheckpointStore | null {
    return this.opened ? this.pg : null;
  }

  async open(): Promise<void> {
    await this.pg.ensureReady();
    this.opened = true;
  }

  async close(): Promise<void> {
    this.opened = false;
    await Promise.all([this.pg.close().catch(() => undefined), this.side.end().catch(() => undefined)]);
  }

  async probe(): Promise<StoreUnavailableError | null> {
    try {
      const r = await this.side.query<{ ro: boolean }>('SELECT pg_is_in_recovery() AS ro');
      if (r.rows[0]?.ro) return new StoreUnavailableError('locked', `${this.location} is a standby in recovery (read-only)`, '25006');
      await this.pg.ensureReady();
      this.downUntil = 0;
      return null;
    } catch (err) {
      const e = toPgStoreError(err, `probe (${this.location})`);
      if (e instanceof StoreUnavailableError) return e;
      throw e;
    }
  }

  setDegradedReads(): void {
    // Nothing to change: PostgreSQL reads never wait on a lock ckpt's writers hold.
  }

  endEpisode(): void {
    this.downUntil = 0;
  }

  noteDiscovered(fileUrls: readonly string[]): void {
    this.sawDatabase = true;
    for (const u of fileUrls) this.known.add(u);
  }

  async lookup(fileUrl: string): Promise<Looked | null> {
    if (Date.now() >= this.downUntil) {
      try {
        const r = await this.side.query(`SELECT * FROM ${this.qs}.file_checkpoints WHERE file_url = $1::text`, [fileUrl]);
        if (r.rows[0]) return { row: toRecord(r.rows[0] as Record<string, unknown>), tomb: null, source: 'database' };
        const t = await this.side.query<{ fingerprint: string; version: number }>(`SELECT fingerprint, version FROM ${this.qs}.file_tombstones WHERE file_url = $1::text`, [fileUrl]);
        return { row: null, tomb: t.rows[0] ?? null, source: 'database' };
      } catch (err) {
        if (!(toPgStoreError(err, 'look-up') instanceof StoreUnavailableError)) return null;
        this.downUntil = Date.now() + DOWN_HOLD_MS;
      }
    }
    // Nobody can tell: only a file new to this process (first seen while degraded) may run.
    if (!this.sawDatabase || this.known.has(fileUrl)) return null;
    return { row: null, tomb: null, source: 'assumed-new' };
  }

  async claimable(nowIso: string, limit: number): Promise<FileRecord[] | null> {
    if (Date.now() < this.downUntil) return null;
    try {
      const q = (where: string) => this.side.query(`SELECT * FROM ${this.qs}.file_checkpoints WHERE ${where} AND due_at <= $1 ORDER BY due_at LIMIT $2`, [nowIso, limit]);
      const ready = await q(`status IN ('pending', 'failed')`);
      const expired = await q(`status = 'processing'`);
      return [...ready.rows, ...expired.rows].map((r) => toRecord(r as Record<string, unknown>));
    } catch {
      this.downUntil = Date.now() + DOWN_HOLD_MS;
      return null;
    }
  }

  async renumber(fileUrl: string, token: string, attempt: number): Promise<number | null> {
    try {
      // Past any number an attempt row of this version has (see sqlite-primary.ts).
      const r = await this.pg.pool.query<{ attempts: number }>(
        `UPDATE ${this.qs}.file_checkpoints AS f SET attempts = GREATEST($1, 1 + COALESCE((SELECT max(a.attempt) FROM ${this.qs}.file_attempts a
           WHERE a.file_url = f.file_url AND a.version = f.version), 0))
         WHERE f.file_url = $2::text AND f.claim_token = $3 AND f.status = 'processing' AND f.attempts < $1
         RETURNING f.attempts`,
        [attempt, fileUrl, token],
      );
      return r.rows[0]?.attempts ?? null;
    } catch (err) {
      if (!(toPgStoreError(err, 'renumber') instanceof StoreUnavailableError)) throw err;
      return null;
    }
  }

  async defer(blocked: readonly { fileUrl: string; token: string; until: number }[], nowIso: string): Promise<boolean> {
    try {
      await this.pg.pool.query(
        `UPDATE ${this.qs}.file_checkpoints AS f SET status = CASE WHEN f.retry_count > 0 THEN 'failed' ELSE 'pending' END,
           due_at = b.until, attempts = f.attempts - 1, handler_pid = NULL, updated_at = $4
         FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS b(file_url, token, until)
         WHERE f.file_url = b.file_url AND f.claim_token = b.token AND f.status = 'processing'`,
        [blocked.map((b) => b.fileUrl), blocked.map((b) => b.token), blocked.map((b) => iso(b.until)), nowIso],
      );
      return true;
    } catch (err) {
      if (!(toPgStoreError(err, 'defer') instanceof StoreUnavailableError)) throw err;
      return false;
    }
  }

  async expiring(now: number, limit: number, skip: number): Promise<Expiring[]> {
    try {
      const r = await this.pg.pool.query<{ file_url: string; claim_token: string | null }>(
        `SELECT file_url, claim_token FROM ${this.qs}.file_checkpoints WHERE status = 'processing' AND due_at <= $1 ORDER BY due_at LIMIT $2 OFFSET $3`,
        [iso(now), limit, skip],
      );
      return r.rows.filter((x) => x.claim_token !== null).map((x) => ({ fileUrl: x.file_url, token: x.claim_token! }));
    } catch (err) {
      throw toPgStoreError(err, 'read expiring leases');
    }
  }

  async extendLeases(keep: readonly (Expiring & { until: number })[], now: number): Promise<number> {
    if (keep.length === 0) return 0;
    try {
      const r = await this.pg.pool.query(
        `UPDATE ${this.qs}.file_checkpoints AS f SET due_at = b.until, updated_at = $4
         FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS b(file_url, token, until)
         WHERE f.file_url = b.file_url AND f.claim_token = b.token AND f.status = 'processing' AND f.due_at < b.until`,
        [keep.map((k) => k.fileUrl), keep.map((k) => k.token), keep.map((k) => iso(k.until)), iso(now)],
      );
      return r.rowCount ?? 0;
    } catch (err) {
      throw toPgStoreError(err, 'extend leases held under claim markers');
    }
  }

  async replay(entries: readonly JournalEntry[], carried: readonly CarriedClaim[], now: number, onEntryError: (err: unknown, e: JournalEntry) => void): Promise<ReplayOutcome> {
    let client: pg.PoolClient;
    try {
      client = await this.pg.pool.connect();
    } catch (err) {
      throw toPgStoreError(err, `replay (${this.location})`);
    }
    let failure: unknown = null;
    try {
      await client.query('BEGIN');
      const out = await replayOnPostgres(client, this.qs, entries, carried, now, onEntryError);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      failure = err;
      await client.query('ROLLBACK').catch(() => undefined);
      throw toPgStoreError(err, `replay (${this.location})`);
    } finally {
      client.release(failure instanceof Error && toPgStoreError(failure, '') instanceof StoreUnavailableError ? failure : undefined);
    }
  }

  async readWhileDegraded<T>(fn: (s: CheckpointStore) => Promise<T>): Promise<T | null> {
    if (!this.opened || Date.now() < this.downUntil) return null;
    try {
      return await fn(this.pg);
    } catch {
      this.downUntil = Date.now() + DOWN_HOLD_MS;
      return null;
    }
  }
}
