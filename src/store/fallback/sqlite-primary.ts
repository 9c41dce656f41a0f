import fs from 'node:fs';
import path from 'node:path';
import { syncCommitted } from '../durable-commit.js';
import { type SqliteDatabase, openDatabase } from '../open-database.js';
import { StoreUnavailableError, classifySqliteError, toStoreError } from '../sqlite-errors.js';
import { MAX_ATTEMPT_ROW } from '../sqlite-statements.js';
import { SqliteStore, type SqliteStoreOptions } from '../sqlite-store.js';
import { iso } from '../time.js';
import type { CheckpointStore, FileRecord } from '../types.js';
import { type Expiring, expiringClaims, extendLeases } from './fencing.js';
import { checkIntegrity, isCorruption, probeWritable, withBusyTimeout } from './health-probe.js';
import type { JournalEntry } from './journal.js';
import { Lookup, type Looked } from './lookup.js';
import type { FallbackPrimary, ReplayOutcome } from './primary.js';
import { type CarriedClaim, Replayer, applyAll } from './replay.js';

/**
 * The SQLite database behind a FallbackStore. Every method is synchronous: a recovery
 * (probe, replay, switch back) happens in one turn of the event loop, so no call interleaves
 * with it. The SQLite-only parts of the fallback (quick_check, snapshot, salvage of a corrupt
 * file, the "file was replaced" check) read `db` and `replaced()` from here.
 */
export class SqlitePrimary implements FallbackPrimary {
  readonly kind = 'sqlite' as const;
  readonly file: string;
  private current: SqliteStore | null = null;
  private ino: number | null = null;
  private readonly lookups: Lookup;
  private readonly busyTimeoutMs: number;

  constructor(
    file: string,
    private readonly opts: SqliteStoreOptions,
    readonly defaultFallbackDir = `${path.resolve(file)}.fallback`,
    onCopy?: ConstructorParameters<typeof Lookup>[2],
    lookupRoot = defaultFallbackDir,
  ) {
    this.file = path.resolve(file);
    this.busyTimeoutMs = opts.busyTimeoutMs ?? 5_000;
    this.lookups = new Lookup(this.file, lookupRoot, onCopy);
  }

  get location(): string {
    return this.file;
  }

  get store(): SqliteStore | null {
    return this.current;
  }

  /** The open connection, or null. */
  get db(): SqliteDatabase | null {
    return this.current?.db ?? null;
  }

  open(): void {
    const store = new SqliteStore(this.file, this.opts);
    this.current = store;
    this.ino = inodeOf(this.file);
  }

  close(): void {
    const p = this.current;
    this.current = null;
    this.ino = null;
    // Safe even after the file was moved aside: SQLite neither checkpoints into nor deletes the
    // -wal of a database that was renamed away (the pager checks SQLITE_FCNTL_HAS_MOVED).
    void p?.close();
  }

  /** Another process salvaged the file: the path names a new inode. */
  replaced(): boolean {
    if (this.ino === null) return false;
    return inodeOf(this.file) !== this.ino;
  }

  checkIntegrity(): StoreUnavailableError | null {
    return this.db ? checkIntegrity(this.db) : null;
  }

  /**
   * quick_check through a fresh connection: its own empty page cache reads the file as it is
   * now (the open connection's cache, 16 MB by default, would hide damage for a long time).
   * Returns corruption only; a lock or a missing file is for the ordinary calls to tell.
   */
  checkFile(): StoreUnavailableError | null {
    let db: SqliteDatabase | undefined;
    try {
      db = openDatabase(this.file, { readonly: true, busyTimeoutMs: 0, allowNetworkFs: true });
      const bad = checkIntegrity(db);
      return bad && bad.kind === 'broken' ? bad : null;
    } catch (err) {
      const e = toStoreError(err, 'health check');
      return e instanceof StoreUnavailableError && isCorruption(e) ? e : null;
    } finally {
      try {
        db?.close();
      } catch {
        // ignore
      }
    }
  }

  probe(): StoreUnavailableError | null {
    return this.db ? probeWritable(this.db) : null;
  }

  setDegradedReads(on: boolean): void {
    // Reads while degraded must not wait: under locking_mode=EXCLUSIVE elsewhere every read
    // would block the event loop for the whole busy timeout and then fail anyway.
    try {
      this.db?.pragma(`busy_timeout = ${on ? 0 : this.busyTimeoutMs}`);
    } catch {
      // a broken connection; reported on the next call
    }
  }

  lookup(fileUrl: string, now: number): Looked | null {
    return this.lookups.get(this.db, fileUrl, now);
  }

  claimable(nowIso: string, limit: number): FileRecord[] | null {
    return this.lookups.claimable(this.db, nowIso, limit);
  }

  endEpisode(): void {
    this.lookups.dropCopy();
  }

  renumber(fileUrl: string, token: string, attempt: number): number | null {
    try {
      // Past any number an attempt row of this version has: a replay may have given one away
      // between the claim and this call (30-minute soak: two rows v2#2).
      const r = this.db
        ?.prepare(
          `UPDATE file_checkpoints SET attempts = max(?, 1 + ${MAX_ATTEMPT_ROW})
           WHERE file_url = ? AND claim_token = ? AND status = 'processing' AND attempts < ?
           RETURNING attempts`,
        )
        .get(attempt, fileUrl, token, attempt) as { attempts: number } | undefined;
      return r?.attempts ?? null;
    } catch (err) {
      if (classifySqliteError(err) === 'other') throw err;
      // Locked again: the replay renumbers whichever outcome comes second (replay.ts).
      return null;
    }
  }

  defer(blocked: readonly { fileUrl: string; token: string; until: number }[], nowIso: string): boolean {
    const db = this.db;
    if (!db) return false;
    try {
      const st = db.prepare(
        `UPDATE file_checkpoints SET status = CASE WHEN retry_count > 0 THEN 'failed' ELSE 'pending' END,
           due_at = ?, attempts = attempts - 1, handler_pid = NULL, updated_at = ?
         WHERE file_url = ? AND claim_token = ? AND status = 'processing'`,
      );
      db.transaction(() => {
        for (const b of blocked) st.run(iso(b.until), nowIso, b.fileUrl, b.token);
      }).immediate();
      return true;
    } catch (err) {
      if (classifySqliteError(err) === 'other') throw err;
      return false;
    }
  }

  expiring(now: number, limit: number, skip: number): Expiring[] {
    return this.db ? expiringClaims(this.db, now, limit, skip) : [];
  }

  extendLeases(keep: readonly (Expiring & { until: number })[], now: number): number {
    return this.db ? extendLeases(this.db, keep, now) : 0;
  }

  /**
   * One IMMEDIATE transaction with busy timeout 0: all or nothing, and never a wait. Synced
   * before it returns: the caller deletes the journals next, and a replay that a power cut
   * took back would lose their outcomes for good (durable-commit.ts).
   */
  replay(entries: readonly JournalEntry[], carried: readonly CarriedClaim[], now: number, onEntryError: (err: unknown, e: JournalEntry) => void): ReplayOutcome {
    const db = this.db;
    if (!db) throw new Error('replay without an open database');
    const replayer = new Replayer(db, now);
    const lostTokens = withBusyTimeout(db, 0, () => db.transaction(() => applyAll(replayer, entries, carried, onEntryError)).immediate());
    if (entries.length > 0) syncCommitted(db);
    return { stats: replayer.stats, lostTokens };
  }

  async readWhileDegraded<T>(fn: (s: CheckpointStore) => Promise<T>): Promise<T | null> {
    const p = this.current;
    if (!p) return null;
    try {
      return await withBusyTimeout(p.db, 0, () => fn(p));
    } catch {
      return null;
    }
  }
}

function inodeOf(file: string): number | null {
  try {
    return fs.statSync(file).ino;
  } catch {
    return null;
  }
}
