import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MemoryStore } from '../memory-store.js';
import { StoreUnavailableError, toStoreError } from '../sqlite-errors.js';
import { iso } from '../time.js';
import type { DiscoveredFile } from '../types.js';
import { fingerprintOf } from '../../file-identity.js';
import type { ClaimMarkers } from './claim-markers.js';
import { ROOM_AFTER_FULL, checkIntegrity, hasRoomFor, isCorruption } from './health-probe.js';
import { type Journal, type JournalEntry, type ReadJournal, listJournals, orphanJournals, readJournal, removeJournal } from './journal.js';
import type { ModeInfo } from './options.js';
import { type MarkerAuthor, type OpenClaims, carried as carriedClaim } from './open-claims.js';
import { type FallbackPrimary, type Maybe, drive } from './primary.js';
import { type ProcessIdentity, livenessOnce } from './process-identity.js';
import type { ReplayStats } from './replay.js';
import type { SalvageReport } from './salvage.js';
import { SalvageRun } from './salvage-run.js';
import { SNAPSHOT_NAME } from './snapshot.js';
import type { SqlitePrimary } from './sqlite-primary.js';

/** What recovery needs from the FallbackStore it brings back; the mode itself stays with the store. */
export interface RecoveryDeps {
  kind: 'sqlite' | 'postgres';
  /** The database file (SQLite), or `postgres host:port/db`. */
  file: string;
  dir: string;
  author: MarkerAuthor;
  self: ProcessIdentity;
  fileMode: number | undefined;
  db: FallbackPrimary;
  /** The same primary when it is SQLite (quick_check, salvage, the replaced-file check). */
  sq: SqlitePrimary | null;
  markers: ClaimMarkers;
  locks: ClaimMarkers;
  journal: Journal;
  open: OpenClaims;
  probeMs: number;
  degradedLogMs: number;
  clock: () => number;
  log: Logger | undefined;
  counters: { replayed: ReplayStats; salvages: number };
  localPath: (stored: string) => string;
  /** The store's mode now (the store switches it: degrade, backToNormal). */
  mode: () => ModeInfo;
  closed: () => boolean;
  /** Resolves once no degraded-mode call is in progress; null when none is now. */
  idle: () => Promise<void> | null;
  degrade: (err: StoreUnavailableError) => void;
  /** The store's switch back to normal mode, after a replay that committed. */
  backToNormal: (now: number, stats: ReplayStats) => void;
  /** One recovery attempt through the store (it holds calls while an asynchronous one runs). */
  recoverNow: () => Maybe<boolean>;
  discover: (files: DiscoveredFile[], now: number) => Promise<unknown>;
}

/**
 * Getting out of degraded mode: what went wrong in this episode (corrupt, disk full), the probe
 * and the "still degraded" line on timers, opening (or salvaging and reopening) the database,
 * replaying journals and markers, and handing the database the files seen while degraded.
 * Also the replay of what dead processes left behind, at start and in normal mode.
 */
export class Recovery {
  /** The file's content is bad (CORRUPT/NOTADB), as opposed to locked, full, or replaced. */
  private isCorrupt = false;
  /** The episode met SQLITE_FULL: recovery waits for free space (see hasRoomFor). */
  private diskFull = false;
  private running = false;
  private lastOrphanCheck = 0;
  private probeTimer: NodeJS.Timeout | null = null;
  private logTimer: NodeJS.Timeout | null = null;
  /** The salvage of a corrupt file and its lock. */
  private readonly salvager: SalvageRun;
  lastSalvage: SalvageReport | null = null;

  constructor(private readonly d: RecoveryDeps) {
    this.salvager = new SalvageRun({
      file: d.file, dir: d.dir, locks: d.locks, author: d.author, snapshot: path.join(d.dir, SNAPSHOT_NAME), fileMode: d.fileMode,
      clock: d.clock, log: d.log,
      replacedWhileOpen: () => d.db.store !== null && this.fileReplaced(),
      closePrimary: () => this.closePrimary(),
      salvaged: (report) => {
        this.isCorrupt = false;
        d.counters.salvages++;
        this.lastSalvage = report;
      },
    });
  }

  get corrupt(): boolean {
    return this.isCorrupt;
  }

  /** A recovery attempt is under way. */
  get recovering(): boolean {
    return this.running;
  }

  /** What an unavailability says about the episode (the store calls it as it degrades). */
  note(err: StoreUnavailableError): void {
    if (isCorruption(err)) this.isCorrupt = true;
    if (err.code?.startsWith('SQLITE_FULL')) this.diskFull = true;
  }

  /** The database file was replaced underneath (another process salvaged it). */
  fileReplaced(): boolean {
    return this.d.sq?.replaced() ?? false;
  }

  salvageLockStands(): boolean {
    return this.salvager.lockStands();
  }

  openPrimary(): Maybe<void> {
    if (this.salvageLockStands()) {
      throw new StoreUnavailableError('broken', `another ckpt process is salvaging ${this.d.file}`, undefined);
    }
    return this.d.db.open();
  }

  /** SQLite only (a file replaced or salvaged underneath): closing is synchronous there. */
  private closePrimary(): void {
    void this.d.db.close();
  }

  // ---- timers while degraded -----------------------------------------------------------------------

  startTimers(): void {
    if (!this.probeTimer) {
      this.probeTimer = setInterval(() => void this.probe(), this.d.probeMs);
      this.probeTimer.unref();
    }
    if (!this.logTimer) {
      this.logTimer = setInterval(() => {
        const m = this.d.mode();
        if (m.mode !== 'degraded') return;
        this.d.log?.error(
          { since: iso(m.since ?? 0), reason: m.reason, kind: m.kind, openClaims: this.d.open.size, journal: this.d.journal.file },
          'still degraded: the database is unavailable; outcomes are kept in the journal',
        );
      }, this.d.degradedLogMs);
      this.logTimer.unref();
    }
  }

  stopTimers(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.logTimer) clearInterval(this.logTimer);
    this.probeTimer = null;
    this.logTimer = null;
  }

  /** One recovery attempt (timer tick). Never throws. */
  async probe(): Promise<void> {
    if (!this.degraded() || this.running || this.d.closed()) return;
    if (this.d.kind === 'postgres' && this.d.db.store) {
      // Ask before closing the gate: against a server behind a network partition one probe waits
      // its whole connect timeout (2 s), and the calls it held would stall for that long each time.
      this.running = true;
      let down: boolean;
      try {
        down = (await this.d.db.probe()) !== null;
      } catch {
        down = true;
      } finally {
        this.running = false;
      }
      if (down || !this.degraded() || this.d.closed()) return;
    }
    await this.d.recoverNow();
  }

  private degraded(): boolean {
    return this.d.mode().mode === 'degraded';
  }

  // ---- recovery ------------------------------------------------------------------------------------

  /**
   * One recovery attempt: salvage a corrupt file, reopen, check, probe the write lock, replay,
   * and switch back (the store's backToNormal). True when back in normal mode.
   */
  *steps(): Generator<unknown, boolean, unknown> {
    if (!this.degraded() || this.running || this.d.closed()) return false;
    this.running = true;
    const now = this.d.clock();
    try {
      const idle = this.d.idle();
      if (idle) yield idle;
      if (this.salvageLockStands()) return false;
      if (this.diskFull && this.d.kind === 'sqlite' && !hasRoomFor(this.d.file, ROOM_AFTER_FULL)) return false;
      if (!(yield* this.reopenSteps(now))) return false;
      const blocked = (yield this.d.db.probe()) as StoreUnavailableError | null;
      if (blocked) {
        if (isCorruption(blocked)) this.isCorrupt = true;
        return false;
      }
      this.isCorrupt = false;
      const stats = (yield drive(this.replaySteps(now, true))) as ReplayStats;
      this.diskFull = false;
      this.d.backToNormal(now, stats);
      return true;
    } catch (err) {
      const e = toStoreError(err, 'recovery');
      if (e instanceof StoreUnavailableError) {
        if (isCorruption(e)) this.isCorrupt = true;
      } else {
        this.d.log?.error({ err }, 'recovery from degraded mode failed; will retry');
      }
      return false;
    } finally {
      this.running = false;
    }
  }

  /** A database that is open, salvaged if it was corrupt, and passes quick_check. False: not yet. */
  private *reopenSteps(now: number): Generator<unknown, boolean, unknown> {
    const { db } = this.d;
    if (db.store && this.fileReplaced()) this.closePrimary();
    if (db.store && this.isCorrupt) {
      if (!this.salvager.run(now)) return false;
    }
    if (db.store) return true;
    try {
      yield this.openPrimary();
    } catch (err) {
      const e = toStoreError(err, `open ${this.d.file}`);
      if (!(e instanceof StoreUnavailableError)) throw e;
      if (!isCorruption(e)) return false;
      this.isCorrupt = true;
      if (!this.salvager.run(now)) return false;
      yield this.openPrimary();
    }
    const bad = this.d.sq?.db ? checkIntegrity(this.d.sq.db) : null;
    if (bad) {
      if (bad.kind === 'broken') this.isCorrupt = true;
      this.d.degrade(bad);
      return false;
    }
    return true;
  }

  /**
   * Files discovered while degraded and not handled yet: the database must learn them. The
   * watcher will not hand them again (it remembers what it handed), so retry until it takes
   * them (a disk that was full may refuse the first writes after space returns). Only files
   * still on disk as they were seen: one moved away or rewritten meanwhile (by a worker that
   * handled its newer content while this process was stopped) would come back as a stale new
   * version and go dead as "vanished"; new content is the watcher's to report once it is whole.
   */
  rediscoverSeen(mem: MemoryStore): void {
    const files: DiscoveredFile[] = mem
      .records()
      .filter((r) => (r.status === 'pending' || r.status === 'failed') && this.onDiskAsSeen(r.fileUrl, r.fingerprint))
      .map((r) => ({ fileUrl: r.fileUrl, fileType: r.fileType, mtimeMs: Date.parse(r.fileTimestamp), size: r.fileSize, fingerprint: r.fingerprint }));
    if (files.length > 0) this.rediscover(files, 0);
  }

  /** The stored name's file on this host still has this fingerprint (one lstat). */
  onDiskAsSeen(stored: string, fingerprint: string): boolean {
    try {
      return fingerprintOf(fs.lstatSync(this.d.localPath(stored))) === fingerprint;
    } catch {
      return false;
    }
  }

  /** Hand files seen while degraded to the database, retrying every second for up to 10 minutes. */
  private rediscover(files: DiscoveredFile[], attempt: number): void {
    if (this.d.closed()) return;
    this.d.discover(files, Date.now()).catch((err: unknown) => {
      if (attempt % 10 === 0) this.d.log?.warn({ err, files: files.length, attempt }, 'could not re-discover files seen while degraded; retrying');
      if (attempt < 600) setTimeout(() => this.rediscover(files, attempt + 1), 1_000).unref();
    });
  }

  // ---- replay --------------------------------------------------------------------------------------

  /**
   * Replay journals (this process's and those of dead processes), apply terminal markers of
   * dead processes, and (at recovery) write this process's open claims into the database, in
   * one IMMEDIATE transaction with busy timeout 0. Then remove what was replayed.
   */
  *replaySteps(now: number, carry: boolean): Generator<unknown, ReplayStats, unknown> {
    const { journal, markers, open, dir, author, log } = this.d;
    const mine: ReadJournal | null = carry && fs.existsSync(journal.file) ? readJournal(journal.file) : null;
    // One verdict per owner for the whole pass, markers' owners first: a marker removed below
    // belongs to an owner that was gone before its journal was read, so that journal is whole.
    const alive = livenessOnce();
    const done = markers.all().filter((m) => m.instance === author.instance || !alive(m.owner));
    const orphans = orphanJournals(dir, journal.file, this.d.self.host, alive);
    const entries: JournalEntry[] = [];
    for (const j of orphans) entries.push(...j.entries);
    if (mine) entries.push(...mine.entries);
    // A terminal marker carries its outcome too: it covers a crash between the marker and
    // the journal line (replaying both is harmless: the token makes the second a no-op).
    for (const m of done) if (m.entry) entries.push(m.entry);
    const carried = carry ? [...open.values()] : [];
    const { stats: s, lostTokens } = (yield this.d.db.replay(entries, carried.map((o) => carriedClaim(o)), now, (err, e) =>
      log?.error({ err, path: e.fileUrl, entry: e.t }, 'a journal entry could not be replayed; skipped'),
    )) as { stats: ReplayStats; lostTokens: Set<string> };
    const lost = carried.filter((o) => lostTokens.has(o.claim.token));
    // Committed: the journals are redundant now. Journal first, then markers, so a marker never
    // disappears while its outcome exists only in a journal.
    for (const j of orphans) removeJournal(j.file);
    if (mine) journal.remove();
    for (const m of done) markers.remove(m.fileUrl, m.gen);
    for (const o of lost) {
      open.delete(o.claim.fileUrl);
      log?.warn({ path: o.claim.fileUrl, attempt: o.claim.attempt, workerId: author.workerId }, 'claim held while degraded was finished elsewhere meanwhile; it is lost');
    }
    const c = this.d.counters.replayed;
    c.applied += s.applied;
    c.skipped += s.skipped;
    c.conflicts += s.conflicts;
    c.inserted += s.inserted;
    c.renumbered += s.renumbered;
    if (orphans.length > 0) {
      log?.warn({ journals: orphans.map((j) => path.basename(j.file)), replayed: s.applied, conflicts: s.conflicts }, 'replayed journals left by ckpt processes that are gone');
    }
    if (s.conflicts > 0) {
      log?.error(
        { conflicts: s.conflicts },
        'some journal outcomes met a different outcome or a newer claim in the database (a file completed twice, or a failure after a newer claim); the database kept its own, see outcome "conflict" in their attempts',
      );
    }
    return s;
  }

  /** In normal mode: replay what dead processes left behind (rate-limited unless forced). */
  *reconcileSteps(force = false): Generator<unknown, void, unknown> {
    const now = this.d.clock();
    if (!force && now - this.lastOrphanCheck < this.d.probeMs) return;
    this.lastOrphanCheck = now;
    if (!this.d.db.store || this.degraded()) return;
    const anyJournal = listJournals(this.d.dir).some((f) => f !== this.d.journal.file);
    if (!anyJournal && !this.d.markers.anyExist()) return;
    yield drive(this.replaySteps(now, false));
  }

  async reconcileOrphans(): Promise<void> {
    await drive(this.reconcileSteps());
  }
}
