import type { Logger } from 'pino';
import { idempotencyKey } from '../idempotency.js';
import { MemoryStore } from '../memory-store.js';
import { budgetSpent } from '../retry-policy.js';
import { failureAfterAction, failureOutcome, leaseExpiredError, planFailure } from '../rules/transitions.js';
import type { SqliteStoreOptions } from '../sqlite-store.js';
import { iso } from '../time.js';
import type {
  ChangePolicy,
  Claim,
  ClaimOptions,
  ClaimRef,
  Completion,
  DiscoverResult,
  DiscoveredFile,
  ExpiredClaim,
  FailResult,
  Failure,
  FileRecord,
  RetryPolicy,
  WriteResult,
} from '../types.js';
import { type ClaimMarkers, type Marker, type MarkerBody, claimStands } from './claim-markers.js';
import { stillHeld } from './fencing.js';
import type { Journal, JournalEntry } from './journal.js';
import type { Looked } from './lookup.js';
import { type MarkerAuthor, type OpenClaim, type OpenClaims, claimMarker, entryBase } from './open-claims.js';
import type { FallbackPrimary, Maybe } from './primary.js';
import { type Terms, type VetContext, type Verdict, judgeMarker, judgeRow } from './vetting.js';

/** Claimable rows read from the database into memory at a time while degraded. */
const REFILL_ROWS = 10_000;

/** What degraded mode needs from the FallbackStore it stands in for. */
export interface DegradedDeps {
  kind: 'sqlite' | 'postgres';
  author: MarkerAuthor;
  workerId: string;
  db: FallbackPrimary;
  markers: ClaimMarkers;
  journal: Journal;
  open: OpenClaims;
  opts: Pick<SqliteStoreOptions, 'onChange' | 'random'>;
  retry: RetryPolicy;
  probeMs: number;
  clock: () => number;
  log: Logger | undefined;
  counters: { fencedOutcomes: number };
  /** What the database says about a file, or null when nobody can tell (see DegradedReads.looked). */
  looked: (fileUrl: string, now: number) => Maybe<Looked | null>;
  /** The database may be read at all (not corrupt, not replaced, not broken and closed). */
  mayAskDatabase: () => boolean;
  /** The stored name's file on this host still has this fingerprint. */
  onDiskAsSeen: (stored: string, fingerprint: string) => boolean;
}

/**
 * Degraded mode: work goes on in memory while the database is locked or broken. It exists
 * only while the store is degraded (the FallbackStore makes one when it degrades and drops it
 * when it is back), so its memory is always there.
 * - discovery and claims go on in a MemoryStore; before a file is handed out, the database is
 *   asked by a read (or a private copy of it, see Lookup) and a claim marker is taken
 *   (ClaimMarkers), so a completed file is not run again and two local processes never run the
 *   same file (vetting.ts judges);
 * - every outcome is appended to a journal and fsynced before the call returns, and moves the
 *   claim's marker, fenced by the time the claim is known to be held (fencing.ts).
 */
export class DegradedMode {
  readonly memory: MemoryStore;
  private lastRefill = 0;
  /** Set when the store is back in normal mode: a claim loop still running stops. */
  private ended = false;

  constructor(private readonly d: DegradedDeps) {
    this.memory = new MemoryStore({
      retry: d.retry,
      ...(d.opts.onChange ? { onChange: d.opts.onChange } : {}),
      ...(d.opts.random ? { random: d.opts.random } : {}),
    });
  }

  private get author(): MarkerAuthor {
    return this.d.author;
  }

  /** The store is back in normal mode. */
  end(): void {
    this.ended = true;
  }

  /** While degraded: the handler pid goes into memory and onto the marker (it helps a taker kill an orphan). */
  setHandlerPid(o: OpenClaim | undefined, ref: ClaimRef, pid: number): WriteResult {
    const mem = this.memory;
    if (!o || !mem.peekHeld(ref)) return 'lost';
    void mem.setHandlerPid(ref, pid);
    if (o.marker) {
      const m: Marker = { ...o.marker, handlerPid: pid };
      try {
        if (this.d.markers.refresh(m)) o.marker = m;
      } catch {
        // the pid only helps a taker kill an orphan; the claim itself stands
      }
    }
    return 'ok';
  }

  /** A claim granted by the database before we degraded: hold it in memory and under a marker. */
  adopt(o: OpenClaim, now: number): void {
    const mem = this.memory;
    if (!mem) return;
    const c = o.claim;
    const startedAt = iso(o.startedAt);
    mem.put({
      fileUrl: c.fileUrl,
      fileType: c.fileType,
      fileTimestamp: o.fileTimestamp,
      status: 'processing',
      recordsTotal: 0,
      recordsFiltered: 0,
      recordsPersisted: 0,
      processingTimeMs: 0,
      errorMessage: null,
      retryCount: c.retryCount,
      processedBy: o.workerId,
      startedAt,
      completedAt: null,
      createdAt: startedAt,
      version: c.version,
      attempts: c.attempt,
      fingerprint: c.fingerprint,
      fileSize: o.fileSize,
      claimToken: c.token,
      dueAt: iso(c.leaseExpiresAt),
      handlerPid: o.handlerPid,
      afterAction: null,
      updatedAt: iso(now),
    });
    this.takeMarker(o, now);
  }

  /** A claim marker for a claim the database granted (adopted, or retried at a heartbeat). */
  private takeMarker(o: OpenClaim, now: number): void {
    const c = o.claim;
    try {
      const cur = this.d.markers.current(c.fileUrl);
      if (cur && cur.token === c.token) {
        o.marker = cur;
        return;
      }
      if (cur && claimStands(cur, now)) {
        this.d.log?.warn({ path: c.fileUrl, attempt: c.attempt, workerId: this.d.workerId, holder: cur.workerId }, 'another process holds a claim marker for a file this process holds in the database');
        return;
      }
      // A marker protects the claim only if it exists before the database lease runs out
      // (fencing.ts); a later one could follow a sweep that already took the claim over.
      if (!stillHeld(c.leaseExpiresAt, this.d.clock())) return;
      const m = this.d.markers.transition(c.fileUrl, cur?.gen ?? 0, this.claimMarker(o, 'claimed'));
      if (m && !stillHeld(c.leaseExpiresAt, this.d.clock())) this.d.markers.drop(m);
      else o.marker = m;
    } catch (err) {
      this.d.log?.warn({ err, path: c.fileUrl, attempt: c.attempt, workerId: this.d.workerId }, 'could not write a claim marker');
    }
  }

  private claimMarker(o: OpenClaim, state: Marker['state'], extra: Partial<MarkerBody> = {}): MarkerBody {
    return claimMarker(this.author, o, state, this.d.clock(), extra);
  }

  /**
   * Move our marker to its next state (an outcome). False: the claim was taken over (our lease
   * ran out and another process took the file), so this outcome must not be recorded.
   */
  private settleMarker(o: OpenClaim, state: Marker['state'], extra: Partial<MarkerBody>): boolean {
    const c = o.claim;
    let cur: Marker | null;
    try {
      cur = this.d.markers.current(c.fileUrl);
    } catch {
      return false;
    }
    if (cur && cur.token !== c.token) return false;
    // Ours was there and is gone: someone cleared or took it over; the claim is not ours to end.
    if (!cur && o.marker) return false;
    const next = this.d.markers.transition(c.fileUrl, cur?.gen ?? 0, this.claimMarker(o, state, extra));
    if (!next) return false;
    o.marker = next;
    return true;
  }

  /**
   * End a claim while degraded: move its marker to the outcome, fenced by the time the claim is
   * known to be held (fencing.ts). False: the claim is lost (taken over, or its lease ran out
   * before the outcome was marked), and nothing may be recorded, moved or deleted.
   */
  private settleFenced(o: OpenClaim, state: Marker['state'], extra: Partial<MarkerBody>, now: number): boolean {
    const c = o.claim;
    const lapsed = () => {
      this.d.counters.fencedOutcomes++;
      this.d.log?.warn(
        { path: c.fileUrl, attempt: c.attempt, workerId: o.workerId, leaseExpiredAt: iso(c.leaseExpiresAt), outcome: state },
        'claim lease ran out while the database was unavailable (another worker may take it over): outcome not recorded',
      );
      return false;
    };
    if (!stillHeld(c.leaseExpiresAt, Math.max(now, this.d.clock()))) return lapsed();
    if (!this.settleMarker(o, state, extra)) return false;
    if (stillHeld(c.leaseExpiresAt, this.d.clock())) return true;
    // The marker landed after the lease ran out: a sweep may already have taken the claim over.
    if (o.marker) this.d.markers.drop(o.marker);
    return lapsed();
  }

  private async refill(now: number): Promise<void> {
    const mem = this.memory;
    if (now - this.lastRefill < 2 * this.d.probeMs) return;
    this.lastRefill = now;
    if (!this.d.mayAskDatabase()) return;
    const rows = await this.d.db.claimable(iso(now), REFILL_ROWS);
    if (!rows) return;
    for (const r of rows) {
      if (mem.has(r.fileUrl)) continue;
      // A row processing under an expired lease (its worker died before we degraded) is claimable;
      // the check below sees the expired lease and ends that attempt.
      mem.put(r.status === 'processing' ? { ...r, status: 'pending', claimToken: null } : r);
    }
  }

  async discover(files: readonly DiscoveredFile[], now: number, onChange?: ChangePolicy): Promise<DiscoverResult> {
    const policy = onChange ?? this.d.opts.onChange;
    const mem = this.memory;
    const res: DiscoverResult = { inserted: 0, reversioned: 0, unchanged: 0, tombstoned: 0 };
    for (const f of files) {
      if (!mem.has(f.fileUrl)) {
        const l = await this.d.looked(f.fileUrl, now);
        if (l?.row) mem.put(l.row);
        else if (l?.tomb && (l.tomb.fingerprint === f.fingerprint || policy === 'ignore')) {
          res.tombstoned++;
          continue;
        }
      }
      const r = await mem.discover([f], now, onChange ? { onChange } : undefined);
      res.inserted += r.inserted;
      res.reversioned += r.reversioned;
      res.unchanged += r.unchanged;
      res.tombstoned += r.tombstoned;
    }
    return res;
  }

  async claim(n: number, opts: ClaimOptions, only?: string): Promise<Claim[]> {
    const mem = this.memory;
    await this.refill(opts.now);
    const out: Claim[] = [];
    const onExpired = (e: readonly ExpiredClaim[]) => this.memoryExpired(e, opts);
    for (let round = 0; out.length < n && round < 64; round++) {
      let cands: Claim[];
      if (only !== undefined) {
        const c = await mem.claimFile(only, { ...opts, onExpired });
        cands = c ? [c] : [];
      } else {
        cands = await mem.claim(n - out.length, { ...opts, onExpired });
      }
      if (cands.length === 0) break;
      // The store recovered meanwhile (cannot happen between resolved promises, but cheap to be sure).
      if (this.ended) break;
      for (const c of cands) {
        let ok: Claim | null = null;
        try {
          ok = await this.vet(c, opts);
        } catch (err) {
          this.d.log?.warn({ err, path: c.fileUrl, attempt: c.attempt, workerId: opts.workerId }, 'could not check a file before handing it out; trying later');
          this.putBack(c, opts.now + this.d.probeMs);
        }
        if (ok) out.push(ok);
      }
      if (only !== undefined) break;
    }
    if (out.length > 0) {
      const entries: JournalEntry[] = [];
      for (const c of out) {
        const o = this.d.open.get(c.fileUrl);
        if (o) entries.push({ t: 'claim', leaseExpiresAt: c.leaseExpiresAt, ...entryBase(o, opts.now) });
      }
      this.d.journal.append(entries, { sync: false });
    }
    return out;
  }

  /** Own claims whose lease ran out in memory (the runner stopped renewing them). */
  private memoryExpired(expired: readonly ExpiredClaim[], opts: ClaimOptions): void {
    opts.onExpired?.(expired);
    const entries: JournalEntry[] = [];
    for (const e of expired) {
      const o = this.d.open.get(e.fileUrl);
      if (!o || o.claim.token !== e.token) continue;
      // Memory's sweep already chose the status by the same rule (expiryStatus, under the file's
      // route): a dead row is final (as if permanent), a failed one is planned from the claim's count.
      const retry = opts.routeOf?.(o.claim.fileType)?.retry ?? this.d.retry;
      const plan = planFailure(retry, o.claim.retryCount, e.status === 'dead', opts.now, this.d.opts.random ?? Math.random);
      const error = leaseExpiredError(e.workerId);
      if (this.settleMarker(o, plan.status, { dueAt: plan.dueAt, retryCount: plan.retryCount })) {
        entries.push({ t: 'expired', status: plan.status, dueAt: plan.dueAt, error, ...entryBase(o, opts.now), retryCount: plan.retryCount });
      }
      this.d.open.delete(e.fileUrl);
    }
    if (entries.length > 0) this.d.journal.append(entries, { sync: true });
  }

  /** Put a memory claim back without counting it: not now, at `due` at the earliest. */
  private putBack(c: Claim, due: number, rec?: FileRecord): void {
    const mem = this.memory;
    const r = rec ?? mem.peek(c.fileUrl);
    if (!r) return;
    mem.put({ ...r, status: r.retryCount > 0 ? 'failed' : 'pending', dueAt: iso(due), attempts: Math.max(0, c.attempt - 1), claimToken: null, startedAt: null, processedBy: null, handlerPid: null });
  }

  /** The database (or another process) finished this file: remember that in memory and do not hand it out. */
  private settleTerminal(row: FileRecord): void {
    this.memory.put({ ...row, claimToken: null, handlerPid: null });
  }

  /**
   * Decide whether a candidate from memory may really be handed out (the judgements are in
   * vetting.ts). Returns the claim (with version, attempt and retry count reconciled against
   * the database and the markers), or null after putting the candidate back or settling it.
   */
  private async vet(c: Claim, opts: ClaimOptions): Promise<Claim | null> {
    const now = opts.now;
    const rec = this.memory.peekHeld(c);
    // Memory handed it out just now; the caller logs this and puts the file back.
    if (!rec) throw new Error(`claim on ${c.fileUrl} is not held in memory`);
    const ctx: VetContext = {
      candidate: c, record: rec, now, retry: this.d.retry, onChange: this.d.opts.onChange, probeMs: this.d.probeMs,
      onDiskAsSeen: (fingerprint) => this.d.onDiskAsSeen(c.fileUrl, fingerprint),
    };
    const ended: { expired: ExpiredClaim[]; entries: JournalEntry[] } = { expired: [], entries: [] };

    // 1. What the database says, before spending a marker on it (a rescan re-offers every
    //    completed file that is still in the folder).
    const first = await this.askDatabase(c, { version: c.version, attempt: c.attempt, retryCount: c.retryCount, fingerprint: c.fingerprint }, ctx, ended.expired);
    if (!('go' in first)) return this.notNow(c, first);

    // 2. Other processes' markers.
    let terms = first.go;
    const cur = this.d.markers.current(c.fileUrl);
    if (cur) {
      const j = judgeMarker(cur, terms, ctx);
      if (!('go' in j.verdict)) return this.notNow(c, j.verdict);
      terms = j.verdict.go;
      if (j.takeover) {
        ended.expired.push(j.takeover.expired);
        ended.entries.push(j.takeover.entry);
      }
    }
    if (budgetSpent(this.d.retry, terms.retryCount) && ended.expired.length > 0) return this.deadOnTakeover(c, terms, rec, opts, cur?.gen ?? 0, ended);

    // 3. Take the marker, then read the database once more: a normal-mode process that claimed
    //    the file before our marker existed has committed by now, and we see it.
    const claim: Claim = { ...c, ...terms, idempotencyKey: idempotencyKey(c.fileUrl, terms.version) };
    const o: OpenClaim = { claim, workerId: opts.workerId, startedAt: now, handlerPid: null, marker: null, fileTimestamp: rec.fileTimestamp, fileSize: rec.fileSize };
    const marker = this.d.markers.transition(c.fileUrl, cur?.gen ?? 0, this.claimMarker(o, 'claimed'));
    if (!marker) {
      // Someone else moved first.
      this.putBack(c, now + Math.ceil(this.d.probeMs / 4), rec);
      return null;
    }
    const second = await this.askDatabase(c, terms, ctx, ended.expired);
    if (!('go' in second) || claim.version !== second.go.version) {
      this.d.markers.drop(marker);
      return this.notNow(c, 'go' in second ? { wait: now, record: rec } : second);
    }
    if (ended.expired.length > 0) opts.onExpired?.(ended.expired);
    if (ended.entries.length > 0) this.d.journal.append(ended.entries, { sync: true });
    const t = second.go;
    this.memory.put({ ...rec, version: t.version, attempts: t.attempt, retryCount: t.retryCount, fingerprint: t.fingerprint, processedBy: opts.workerId });
    o.marker = marker;
    this.d.open.set(c.fileUrl, o);
    return claim;
  }

  /**
   * Read the database's row for the candidate and judge it (vetting.ts); no answer: try again
   * after a probe period. An attempt the row shows expired is added to `expired` (once per token).
   */
  private async askDatabase(c: Claim, terms: Terms, ctx: VetContext, expired: ExpiredClaim[]): Promise<Verdict> {
    const l = await this.d.looked(c.fileUrl, ctx.now);
    if (!l) return { wait: ctx.now + this.d.probeMs, record: ctx.record };
    const j = judgeRow(l, terms, ctx);
    const e0 = j.expired;
    if (e0 && !expired.some((e) => e.token === e0.token)) expired.push(e0);
    return j.verdict;
  }


  /**
   * The run that was taken over (its worker died) was the last one allowed: the file is dead,
   * not another attempt. Marked dead and journalled, or put back if the marker moved meanwhile.
   */
  private deadOnTakeover(c: Claim, terms: Terms, rec: FileRecord, opts: ClaimOptions, gen: number, ended: { expired: ExpiredClaim[]; entries: JournalEntry[] }): null {
    const now = opts.now;
    const o: OpenClaim = { claim: { ...c, ...terms }, workerId: opts.workerId, startedAt: now, handlerPid: null, marker: null, fileTimestamp: rec.fileTimestamp, fileSize: rec.fileSize };
    const entry: JournalEntry = {
      t: 'fail', status: 'dead', dueAt: null, error: 'lease expired and no retries left', durationMs: 0, outcome: 'dead', ...entryBase(o, now),
    };
    opts.onExpired?.(ended.expired);
    const m = this.d.markers.transition(c.fileUrl, gen, this.claimMarker(o, 'dead', { entry }));
    if (m) {
      this.d.journal.append([...ended.entries, entry], { sync: true });
      this.settleTerminal({ ...rec, status: 'dead', version: terms.version, attempts: terms.attempt, retryCount: terms.retryCount, dueAt: null });
    } else {
      this.putBack(c, now + this.d.probeMs, rec);
    }
    return null;
  }

  /** A verdict other than go: settle the file as finished, or put it back until its time. */
  private notNow(c: Claim, v: { wait: number; record: FileRecord } | { done: FileRecord }): null {
    if ('done' in v) this.settleTerminal(v.done);
    else this.putBack(c, v.wait, v.record);
    return null;
  }

  complete(items: readonly Completion[]): WriteResult[] {
    const mem = this.memory;
    const results: WriteResult[] = [];
    const entries: JournalEntry[] = [];
    const done: Completion[] = [];
    for (const c of items) {
      const o = this.d.open.of(c);
      if (!o || !mem.peekHeld(c)) {
        results.push('lost');
        continue;
      }
      const entry: JournalEntry = {
        t: 'complete',
        stats: { ...c.stats },
        afterAction: c.afterAction ?? null,
        ...entryBase(o, c.now),
        // The content the handler really read, when the runner checked it.
        fingerprint: c.fingerprint ?? o.claim.fingerprint,
      };
      if (!this.settleFenced(o, 'completed', { entry, fingerprint: entry.fingerprint }, c.now)) {
        results.push('lost');
        this.d.open.delete(c.fileUrl);
        continue;
      }
      entries.push(entry);
      done.push(c);
      results.push('ok');
    }
    // Durable before anyone hears 'ok': the runner runs the after-action only after this returns.
    this.d.journal.append(entries, { sync: true });
    for (const c of done) {
      void mem.complete([c]);
      this.d.open.delete(c.fileUrl);
    }
    return results;
  }

  fail(f: Failure): FailResult {
    const mem = this.memory;
    const o = this.d.open.of(f);
    const plan = o ? mem.planFail(f) : 'lost';
    if (!o || plan === 'lost') return 'lost';
    const entry: JournalEntry = {
      t: 'fail',
      status: plan.status,
      dueAt: plan.dueAt,
      error: f.error,
      durationMs: f.durationMs,
      outcome: failureOutcome(f.reason, f.permanent, plan.status),
      afterAction: failureAfterAction(plan.status, f.deadAfterAction),
      ...entryBase(o, f.now),
      fingerprint: f.fingerprint ?? o.claim.fingerprint,
      retryCount: plan.retryCount,
    };
    if (!this.settleFenced(o, plan.status, { dueAt: plan.dueAt, retryCount: plan.retryCount, entry, fingerprint: entry.fingerprint }, f.now)) {
      this.d.open.delete(f.fileUrl);
      return 'lost';
    }
    this.d.journal.append([entry], { sync: true });
    this.d.open.delete(f.fileUrl);
    return mem.applyFail(f, plan);
  }

  release(refs: readonly ClaimRef[], now: number): WriteResult[] {
    const mem = this.memory;
    const entries: JournalEntry[] = [];
    const results: WriteResult[] = refs.map((ref) => {
      const o = this.d.open.of(ref);
      if (!o || !mem.peekHeld(ref)) return 'lost';
      this.d.open.delete(ref.fileUrl);
      if (!this.settleFenced(o, 'released', {}, now)) return 'lost';
      entries.push({ t: 'release', ...entryBase(o, now) });
      void mem.release([ref], now);
      return 'ok';
    });
    this.d.journal.append(entries, { sync: true });
    return results;
  }

  heartbeat(refs: readonly ClaimRef[], leaseMs: number, now: number): ClaimRef[] {
    const mem = this.memory;
    const lost: ClaimRef[] = [];
    const loseIt = (ref: ClaimRef) => {
      lost.push(ref);
      this.d.open.delete(ref.fileUrl);
    };
    for (const ref of refs) {
      const o = this.d.open.of(ref);
      if (!o || !mem.peekHeld(ref)) {
        lost.push(ref);
        continue;
      }
      // Only a claim still held may be extended (fencing.ts): once its lease ran out, another
      // worker may have taken it over, whatever our memory says.
      const at = Math.max(now, this.d.clock());
      if (!stillHeld(o.claim.leaseExpiresAt, at)) {
        this.d.log?.warn({ path: ref.fileUrl, attempt: o.claim.attempt, workerId: o.workerId, leaseExpiredAt: iso(o.claim.leaseExpiresAt) }, 'claim lease ran out while the database was unavailable: claim lost');
        loseIt(ref);
        continue;
      }
      if (!o.marker) {
        // Held under the database lease alone (no marker could be written): it is not extended.
        this.takeMarker(o, at);
        if (!o.marker) continue;
      }
      if (this.d.kind === 'postgres' && o.fromDatabase) {
        // Other hosts cannot see this host's markers: for them the lease the database last
        // confirmed is all that holds the claim, and a sweep there takes it over once it runs
        // out. So it is not extended here; the check above loses the claim at that moment.
        continue;
      }
      const m: Marker = { ...o.marker, leaseExpiresAt: at + leaseMs, at };
      let kept: boolean;
      try {
        kept = this.d.markers.refresh(m);
      } catch (err) {
        // An I/O hiccup on one marker is not a lost claim, but the lease is not extended either.
        this.d.log?.warn({ err, path: ref.fileUrl, attempt: o.claim.attempt, workerId: o.workerId }, 'could not renew a claim marker');
        continue;
      }
      if (!kept) {
        loseIt(ref);
        continue;
      }
      if (!stillHeld(o.claim.leaseExpiresAt, this.d.clock())) {
        // Renewed too late: a sweep may have taken it meanwhile.
        loseIt(ref);
        continue;
      }
      o.marker = m;
      o.claim = { ...o.claim, leaseExpiresAt: at + leaseMs };
      void mem.heartbeat([ref], leaseMs, at);
    }
    return lost;
  }

}
