/**
 * The end-of-soak checks, from three independent sources: the database, the handler's own
 * records (scripts/soak/handler.pl) and the folders. Each broken promise becomes a violation
 * with the evidence needed to chase it (rows, runs, fault windows).
 *
 *   every file dropped is completed or dead with a reason, as its content says it should be
 *   no (file, version) completed twice; no claim (file, version, attempt) with two outcomes
 *   no two runs of one file at the same time (flock detector, and start/end times)
 *   a file runs again only after a handler failure, or when the worker running it was killed,
 *     stopped past its lease or terminated (the fault windows say when)
 *   every after-action done once: each completed content in done/ exactly once, each dead one
 *     in dead/, nothing left in the inbox, nothing unknown anywhere
 *   no row left pending/processing/failed; no journal or claim marker left in <db>.fallback/
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { idempotencyKey } from '../../src/store/idempotency.js';
import type { Instance } from './daemons.js';
import type { FaultRecord } from './faults.js';
import type { FaultKind } from './options.js';
import type { Dropped, Gen } from './producer.js';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';

export interface Violation {
  kind: string;
  detail: string;
}

export interface CheckInput {
  inbox: string;
  done: string;
  dead: string;
  db: string;
  records: string;
  fallbackDir: string;
  dropped: ReadonlyMap<string, Dropped>;
  faults: readonly FaultRecord[];
  instances: readonly Instance[];
  stableMs: number;
}

export interface CheckStats {
  names: number;
  contents: number;
  completed: number;
  dead: number;
  /** Dead although the content said succeed: the retry budget was spent by lease expiries. */
  deadByFaults: number;
  /**
   * Dead although the final content said succeed: an earlier content of the same name failed
   * under the same version and spent the budget (a failed file whose content changes keeps its
   * version and its failures; src/store/sqlite-store.ts refreshFingerprint).
   */
  deadBySharedBudget: number;
  runs: number;
  /** Runs after a handler failure (the retry policy at work). */
  retries: number;
  /** Runs again after a fault, by the fault that explains them. */
  reruns: Record<FaultKind, number>;
  unexplainedReruns: number;
  overlaps: number;
  /** Files dropped that did not end completed or dead (or vanished from every folder). */
  lost: number;
  /** Partial reads of a slowly written file whose writer really paused longer than stableMs. */
  partialReadsExcused: number;
  /** Claims taken over (lease_expired attempts). */
  takeovers: number;
  /** Files handled and moved whose row the database no longer has (salvage after corruption). */
  rowsLost: number;
}

interface Run {
  pid: number;
  ppid: number;
  worker: string;
  key: string;
  attempt: string;
  id: string;
  name: string;
  directive: string;
  size: number;
  start: bigint;
  end: bigint | null;
  outcome: string | null;
}

interface Row {
  file_url: string;
  status: string;
  version: number;
  attempts: number;
  error_message: string | null;
  after_action: string | null;
  processed_by: string | null;
}

interface AttemptRow {
  file_url: string;
  version: number;
  attempt: number;
  worker_id: string;
  outcome: string;
  error_message: string | null;
  started_at: string;
  ended_at: string | null;
}

const MAX_DETAILS_PER_KIND = 20;

export function check(input: CheckInput): { stats: CheckStats; violations: Violation[] } {
  const violations: Violation[] = [];
  const perKind = new Map<string, number>();
  const violation = (kind: string, detail: string): void => {
    const n = (perKind.get(kind) ?? 0) + 1;
    perKind.set(kind, n);
    if (n <= MAX_DETAILS_PER_KIND) violations.push({ kind, detail });
    else if (n === MAX_DETAILS_PER_KIND + 1) violations.push({ kind, detail: '(more of this kind not shown)' });
  };
  const stats: CheckStats = {
    names: input.dropped.size,
    contents: 0,
    completed: 0,
    dead: 0,
    deadByFaults: 0,
    deadBySharedBudget: 0,
    runs: 0,
    retries: 0,
    reruns: { kill: 0, stop: 0, term: 0, lock: 0, corrupt: 0 },
    unexplainedReruns: 0,
    overlaps: 0,
    lost: 0,
    partialReadsExcused: 0,
    takeovers: 0,
    rowsLost: 0,
  };

  // ---- sources -------------------------------------------------------------------------------
  const { rows, attempts } = readDatabase(input.db, violation);
  const runs = readRuns(input.records, violation, (n) => (stats.overlaps += n));
  stats.runs = runs.length;
  const fileOf = new Map<string, Dropped>();
  const genById = new Map<string, { d: Dropped; g: Gen }>();
  for (const d of input.dropped.values()) {
    fileOf.set(path.join(input.inbox, d.rel), d);
    stats.contents += d.gens.length;
    for (const g of d.gens) genById.set(`${d.name}#${g.gen}`, { d, g });
  }
  const attemptsByFile = new Map<string, AttemptRow[]>();
  for (const a of attempts) {
    const list = attemptsByFile.get(a.file_url) ?? [];
    list.push(a);
    attemptsByFile.set(a.file_url, list);
    if (a.outcome === 'lease_expired') stats.takeovers++;
  }
  const runsById = new Map<string, Run[]>();
  for (const r of runs) {
    const list = runsById.get(r.id) ?? [];
    list.push(r);
    runsById.set(r.id, list);
  }
  const places = walkFolders(input, violation);

  // ---- the database's own invariants ---------------------------------------------------------
  const completedPerVersion = new Map<string, number>();
  const outcomesPerClaim = new Map<string, AttemptRow[]>();
  for (const a of attempts) {
    if (a.outcome === 'completed') {
      const k = `${a.file_url}\0${a.version}`;
      completedPerVersion.set(k, (completedPerVersion.get(k) ?? 0) + 1);
    }
    const c = `${a.file_url}\0${a.version}\0${a.attempt}`;
    const list = outcomesPerClaim.get(c) ?? [];
    list.push(a);
    outcomesPerClaim.set(c, list);
  }
  for (const [k, n] of completedPerVersion) {
    if (n > 1) {
      const [file, version] = k.split('\0');
      violation('completed-twice', `${file} version ${version}: ${n} 'completed' attempts\n${fmtAttempts(attemptsByFile.get(file ?? '') ?? [])}`);
    }
  }
  for (const [, list] of outcomesPerClaim) {
    if (list.length > 1) {
      const a = list[0]!;
      violation('two-outcomes-one-claim', `${a.file_url} v${a.version} attempt ${a.attempt} has ${list.length} outcomes (a stale worker wrote after losing its claim?)\n${fmtAttempts(list)}`);
    }
  }
  for (const r of rows.values()) {
    if (!fileOf.has(r.file_url)) violation('unknown-row', `${r.file_url} (${r.status}) was never dropped by the producer`);
  }

  // ---- every file dropped: outcome as its content says, after-action done once --------------
  for (const d of input.dropped.values()) {
    const file = path.join(input.inbox, d.rel);
    const final = d.gens[d.gens.length - 1];
    if (!final) continue;
    const finalId = `${d.name}#${final.gen}`;
    const row = rows.get(file);
    if (!row) {
      const at = places.get(finalId) ?? [];
      const handled = (runsById.get(finalId) ?? []).some((r) => r.outcome !== null);
      if (handled && at.length === 1 && !at[0]!.startsWith(`${input.inbox}/`)) {
        // Handled and moved, but the ledger forgot it (a corrupt page salvage could not read).
        stats.rowsLost++;
        violation('row-lost', `${file} (${finalId}, "${final.directive}"): handled and moved to ${at[0]}, but it has no row in the database${input.faults.some((x) => x.kind === 'corrupt') ? ' (the database was corrupted during the run)' : ''}`);
      } else {
        stats.lost++;
        violation('lost', `${file} (${finalId}, ${final.how}, "${final.directive}"): no row in the database; folders: ${fmtPlaces(at)}`);
      }
      continue;
    }
    if (row.status !== 'completed' && row.status !== 'dead') {
      stats.lost++;
      violation('lost', `${file} (${finalId}): left in status ${row.status}\n${fmtAttempts(attemptsByFile.get(file) ?? [])}`);
      continue;
    }
    const atts = (attemptsByFile.get(file) ?? []).filter((a) => a.version === row.version);
    const expiredSome = atts.some((a) => a.outcome === 'lease_expired');
    const okish = final.directive === 'ok' || final.directive.startsWith('sleep ') || final.directive.startsWith('fail ');
    if (row.status === 'completed') {
      stats.completed++;
      if (!okish) violation('wrong-outcome', `${file} (${finalId}) says "${final.directive}" but is completed`);
      const readOk = (runsById.get(finalId) ?? []).some((r) => r.outcome === 'ok' && r.size === final.size);
      const at = places.get(finalId) ?? [];
      if (!readOk && at.length > 0) {
        // (No place at all is reported as lost below.)
        violation(
          at.some((p) => p.startsWith(`${input.done}/`)) ? 'moved-unhandled' : 'completed-unread',
          `${file}: completed v${row.version}, but no run of the handler read its final content ${finalId} whole and succeeded; that content is at ${fmtPlaces(at)}\n` +
            `runs: ${fmtRuns(runs.filter((r) => r.name === d.name))}\n${fmtAttempts(attemptsByFile.get(file) ?? [])}`,
        );
      }
    } else {
      stats.dead++;
      const err = row.error_message ?? '';
      if (err.trim() === '') violation('dead-without-reason', `${file} (${finalId}) is dead with no error message`);
      // Runs of this version that read an earlier content of the name.
      const key = idempotencyKey(file, row.version);
      const sharedBudget = runs.some((r) => r.key === key && r.id !== finalId);
      if (okish) {
        if (expiredSome) stats.deadByFaults++;
        else if (sharedBudget && /told to fail/.test(err)) stats.deadBySharedBudget++;
        else violation('wrong-outcome', `${file} (${finalId}) says "${final.directive}" but is dead: ${err.slice(0, 300)}\n${fmtAttempts(atts)}`);
      } else if (final.directive === 'permanent' && !/EX_DATAERR/.test(err) && !expiredSome) {
        violation('wrong-outcome', `${file} (${finalId}) is permanent: expected an EX_DATAERR error, got: ${err.slice(0, 300)}`);
      } else if (final.directive === 'always-fail' && !/told to fail|lease expired/.test(err)) {
        violation('wrong-outcome', `${file} (${finalId}) always fails: expected "told to fail", got: ${err.slice(0, 300)}`);
      }
    }
    // Where its contents ended up.
    const want = row.status === 'completed' ? input.done : input.dead;
    const at = places.get(finalId) ?? [];
    const inWant = at.filter((p) => p.startsWith(`${want}/`));
    if (at.length === 0) {
      stats.lost++;
      violation(
        'lost',
        `${file}: its final content ${finalId} (${final.how}, "${final.directive}") is in no folder any more, and the row (${row.status} v${row.version}, after_action ${row.after_action ?? 'null'}) ` +
          `${(runsById.get(finalId) ?? []).length === 0 ? 'was never handled by any run' : 'was handled'}\nruns: ${fmtRuns(runs.filter((r) => r.name === d.name))}\n${fmtAttempts(attemptsByFile.get(file) ?? [])}`,
      );
    } else if (at.length !== 1 || inWant.length !== 1) {
      const inInbox = at.some((p) => p.startsWith(`${input.inbox}/`));
      violation(
        inInbox ? 'after-action-not-done' : 'after-action-wrong',
        `${file} (${finalId}) is ${row.status} (after_action ${row.after_action ?? 'null'}, by ${row.processed_by ?? '?'}): expected once in ${path.basename(want)}/, found at: ${fmtPlaces(at)}` +
          (inInbox ? `\n${fmtAttempts(attemptsByFile.get(file) ?? [])}` : ''),
      );
    } else {
      const relDir = path.dirname(d.rel);
      const gotDir = path.dirname(path.relative(want, inWant[0]!));
      if (relDir !== gotDir) violation('after-action-wrong', `${finalId} moved to ${inWant[0]}: expected folder ${relDir}`);
    }
    // Earlier contents: each in at most one place (an overwrite may have replaced it unhandled).
    for (const g of d.gens.slice(0, -1)) {
      const gid = `${d.name}#${g.gen}`;
      const p = places.get(gid) ?? [];
      if (p.length > 1) violation('after-action-wrong', `${gid} (overwritten later) is in ${p.length} places: ${fmtPlaces(p)}`);
      if (p.some((x) => x.startsWith(`${input.inbox}/`))) violation('after-action-not-done', `${gid} (overwritten later) is still in the inbox: ${fmtPlaces(p)}`);
    }
  }
  for (const [id, at] of places) {
    if (!genById.has(id)) violation('unknown-file', `content ${id} at ${fmtPlaces(at)} was never written by the producer`);
  }

  // ---- runs: overlaps, re-runs and partial reads ---------------------------------------------
  const byName = new Map<string, Run[]>();
  for (const r of runs) {
    const list = byName.get(r.name) ?? [];
    list.push(r);
    byName.set(r.name, list);
  }
  for (const [name, list] of byName) {
    list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]!;
      const cur = list[i]!;
      if (prev.end !== null && cur.start < prev.end) {
        stats.overlaps++;
        violation('overlap', `${name}: run pid ${cur.pid} (${cur.worker}) started ${fmtMs(prev.end - cur.start)} before run pid ${prev.pid} (${prev.worker}) ended`);
      }
    }
  }
  const keyToVersion = new Map<string, { file: string; version: number }>();
  for (const r of rows.values()) {
    for (let v = 1; v <= r.version; v++) keyToVersion.set(idempotencyKey(r.file_url, v), { file: r.file_url, version: v });
  }
  const byKey = new Map<string, Run[]>();
  for (const r of runs) {
    const list = byKey.get(r.key) ?? [];
    list.push(r);
    byKey.set(r.key, list);
  }
  for (const [key, list] of byKey) {
    list.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (let i = 0; i + 1 < list.length; i++) {
      const r = list[i]!;
      const next = list[i + 1]!;
      if (r.outcome === 'fail') {
        stats.retries++;
        continue;
      }
      // Interrupted (no end), or ended without its outcome being recorded: a fault on the
      // worker that ran it must lie between its start and the next run's start.
      const f = input.faults.find((x) => x.kind !== 'lock' && (x.workerId === r.worker || x.workerId === null) && x.t0 <= next.start && x.t1 + startSlack(x) >= r.start);
      if (f) {
        stats.reruns[f.kind]++;
        continue;
      }
      if (r.outcome === 'permanent') {
        violation('ran-after-permanent', `${r.id}: run pid ${next.pid} (${next.worker}) after a permanent failure (pid ${r.pid}, ${r.worker}) with no fault in between`);
        continue;
      }
      stats.unexplainedReruns++;
      const lock = input.faults.find((x) => x.kind === 'lock' && x.t0 <= next.start && x.t1 >= r.start);
      const where = keyToVersion.get(key);
      violation(
        'unexplained-rerun',
        `${r.id} (${where ? `${where.file} v${where.version}` : `key ${key}`}): run pid ${r.pid} by ${r.worker} ${r.end === null ? 'did not finish (killed)' : `ended ${r.outcome}`}, ` +
          `and pid ${next.pid} by ${next.worker} ran it again ${fmtMs(next.start - r.start)} after it started; no kill/stop/term of ${r.worker} in between` +
          (lock ? ` (a sqlite3 lock fault was held in between: ${lock.note})` : '') +
          (where ? `\n${fmtAttempts((attemptsByFile.get(where.file) ?? []).filter((a) => a.version === where.version))}` : ''),
      );
    }
  }
  for (const r of runs) {
    const g = genById.get(r.id);
    if (!g) {
      violation('unidentified-run', `handler run pid ${r.pid} by ${r.worker} read content without an id line (${r.size} bytes): a file handled before it was whole`);
      continue;
    }
    if (r.size < g.g.size) {
      if (g.g.how === 'slow' && g.g.maxGapMs >= input.stableMs) stats.partialReadsExcused++;
      else
        violation(
          'partial-read',
          `${r.id} (${g.g.how}, longest pause between writes ${Math.round(g.g.maxGapMs)} ms < stableMs ${input.stableMs}): handler pid ${r.pid} read ${r.size} of ${g.g.size} bytes`,
        );
    }
  }

  // ---- the fallback's folder ----------------------------------------------------------------
  if (fs.existsSync(input.fallbackDir)) {
    // The periodic snapshot (src/store/fallback/snapshot.ts) is meant to stay; journals, claim
    // markers and anything else (a half-written snapshot copy) are not.
    const left = listFiles(input.fallbackDir).filter((f) => path.relative(input.fallbackDir, f) !== 'snapshot.db');
    if (left.length > 0) violation('fallback-leftover', `${left.length} file(s) left in ${input.fallbackDir}: ${left.slice(0, 10).join(', ')}`);
  }
  return { stats, violations };
}

/**
 * A handler spawned just before its daemon was SIGKILLed or SIGTERMed records its start a few
 * milliseconds later (perl's start-up), so after the fault: a run of a worker that is gone
 * started at most this long after the kill is still that worker's. (A stopped worker spawns
 * nothing until SIGCONT, which is the end of the stop's window anyway.)
 */
function startSlack(f: FaultRecord): bigint {
  return f.kind === 'kill' || f.kind === 'term' ? 2_000_000_000n : 0n;
}

function readDatabase(file: string, violation: (k: string, d: string) => void): { rows: Map<string, Row>; attempts: AttemptRow[] } {
  const rows = new Map<string, Row>();
  let attempts: AttemptRow[] = [];
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    for (const r of db.prepare('SELECT file_url, status, version, attempts, error_message, after_action, processed_by FROM file_checkpoints').all() as Row[]) {
      rows.set(r.file_url, r);
    }
    attempts = db
      .prepare('SELECT file_url, version, attempt, worker_id, outcome, error_message, started_at, ended_at FROM file_attempts ORDER BY file_url, version, attempt, id')
      .all() as AttemptRow[];
  } catch (err) {
    violation('database-unreadable', `${file}: ${(err as Error).message}`);
  } finally {
    db?.close();
  }
  return { rows, attempts };
}

function readRuns(file: string, violation: (k: string, d: string) => void, overlaps: (n: number) => void): Run[] {
  const runs: Run[] = [];
  const open = new Map<number, Run>();
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return runs;
  }
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [ev, t, pid, ppid, worker, key, attempt, id, size, outcome] = line.split('\t');
    if (ev === undefined || t === undefined || pid === undefined) continue;
    const p = Number(pid);
    if (ev === 'start') {
      const r: Run = {
        pid: p,
        ppid: Number(ppid),
        worker: worker ?? '',
        key: key ?? '',
        attempt: attempt ?? '',
        id: id ?? '?',
        name: (id ?? '?').split('#')[0] ?? '?',
        directive: outcome ?? '',
        size: Number(size),
        start: BigInt(t),
        end: null,
        outcome: null,
      };
      runs.push(r);
      open.set(p, r);
    } else if (ev === 'end') {
      const r = open.get(p);
      if (r) {
        r.end = BigInt(t);
        r.outcome = outcome ?? '';
        open.delete(p);
      }
    } else if (ev === 'overlap') {
      overlaps(1);
      violation('overlap', `handler pid ${p} (${worker ?? '?'}, attempt ${attempt ?? '?'}) found ${id ?? '?'} locked by a live run of the same file (flock)`);
    }
  }
  return runs;
}

/** content id -> where files holding it are (inbox, done, dead). */
function walkFolders(input: CheckInput, violation: (k: string, d: string) => void): Map<string, string[]> {
  const places = new Map<string, string[]>();
  for (const root of [input.inbox, input.done, input.dead]) {
    if (!fs.existsSync(root)) continue;
    for (const f of listFiles(root)) {
      const base = path.basename(f);
      // The folder's ledger record stays on purpose (src/watch/folder-ownership.ts).
      if (base === LEDGER_MARKER && root === input.inbox) continue;
      if (base.startsWith('.')) {
        violation('leftover-temp', `${f}: a temporary file left behind`);
        continue;
      }
      let id: string | null = null;
      try {
        const head = fs.readFileSync(f, 'utf8').split('\n', 2)[1] ?? '';
        id = /^id (\S+)$/.exec(head)?.[1] ?? null;
      } catch (err) {
        violation('unreadable-file', `${f}: ${(err as Error).message}`);
        continue;
      }
      if (id === null) {
        violation('unknown-file', `${f}: no id line (partial or foreign content)`);
        continue;
      }
      const list = places.get(id) ?? [];
      list.push(f);
      places.set(id, list);
    }
  }
  return places;
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(root);
  return out;
}

function fmtMs(ns: bigint): string {
  return `${(Number(ns) / 1e6).toFixed(1)} ms`;
}

function fmtPlaces(p: readonly string[] | undefined): string {
  return p && p.length > 0 ? p.join(', ') : 'nowhere';
}

function fmtRuns(runs: readonly Run[]): string {
  return runs.map((r) => `[${r.id} pid ${r.pid} ${r.worker} size ${r.size} ${r.end === null ? 'no end' : r.outcome}]`).join(' ') || 'none';
}

function fmtAttempts(atts: readonly AttemptRow[]): string {
  return atts
    .map((a) => `  attempt v${a.version}#${a.attempt} ${a.outcome} by ${a.worker_id} ${a.started_at} -> ${a.ended_at ?? '?'}${a.error_message ? `: ${a.error_message.split('\n')[0]}` : ''}`)
    .join('\n');
}
