/**
 * The `ckpt top` screen as lines of text: a pure function of one snapshot and the terminal's
 * size, so that what a person sees is decided here and nowhere else (screen.ts only draws it).
 *
 * Every line fits the width (cut, never wrapped: a wrapped line would push the screen down).
 * When the height is short, the four lists share what is left after the summary: each keeps its
 * header and first row, and the rest goes round-robin, with "… N more" where rows were left out.
 * A pipe gets everything (width and height Infinity).
 */
import { formatAgo, formatCount, formatDuration, formatSpan, printable } from '../../ops/format.js';
import { type Column, formatKeyValues, formatTable } from '../../ops/table.js';
import { STATUSES } from '../../store/types.js';
import type { TopJson } from './snapshot.js';

export interface View {
  now: number;
  /** Terminal columns and rows; Infinity for a pipe. */
  width: number;
  height: number;
  /** The database as it may be shown (a SQLite path, or PostgreSQL's host/db and schema). */
  where: string | null;
  /** The last refresh could not read the database: why, and since when (epoch ms). */
  problem: { message: string; since: number } | null;
  /** A live screen (the title says how to quit) rather than one snapshot. */
  live: boolean;
}

interface Section {
  title: string;
  columns: Column[];
  rows: string[][];
  /** What the section says when it has no rows. */
  none: string;
}

export function renderTop(s: TopJson | null, v: View): string[] {
  const head = [title(s, v), ...summary(s, v)];
  const lines = [...head];
  if (s !== null) {
    const sections = [inFlight(s, v), backlog(s, v), workers(s, v), failures(s, v)];
    // A title line for each, and a header line for each with rows; blank lines between them
    // only when that still leaves a row for each list that has one.
    let room = v.height - head.length - sections.reduce((n, x) => n + (x.rows.length === 0 ? 1 : 2), 0);
    const gaps = room - sections.length >= sections.filter((x) => x.rows.length > 0).length;
    if (gaps) room -= sections.length;
    const shown = share(sections.map((x) => x.rows.length), room);
    sections.forEach((x, i) => lines.push(...(gaps ? [''] : []), ...section(x, shown[i] ?? 0)));
  }
  return lines.slice(0, Math.max(1, v.height)).map((l) => clip(l, v.width));
}

function title(s: TopJson | null, v: View): string {
  const at = s === null ? v.now : Date.parse(s.generatedAt);
  const clock = `${new Date(at).toISOString().slice(11, 19)} UTC`;
  // The path last: on a narrow screen it is what gets cut.
  return ['ckpt top', clock, v.live ? 'q quits' : '', v.where ?? ''].filter((x) => x !== '').join('  ');
}

function summary(s: TopJson | null, v: View): string[] {
  const kv: [string, string][] = [];
  if (v.problem !== null) {
    const when = s === null ? 'nothing read yet' : `showing what was read ${formatAgo(s.generatedAt, v.now)}`;
    kv.push(['database', `CANNOT READ since ${formatAgo(new Date(v.problem.since).toISOString(), v.now)} (${when}; trying again)`]);
    kv.push(['why', v.problem.message]);
  }
  if (s === null) return kv.length === 0 ? [] : formatKeyValues(kv).split('\n');
  if (s.mode.state === 'degraded') {
    const since = s.mode.since === null ? '' : ` since ${formatAgo(s.mode.since, v.now)}`;
    const why = s.mode.reason === null ? '' : `: ${s.mode.reason}`;
    kv.push(['mode', `DEGRADED${since}${why} (${s.mode.workers.join(', ')})`]);
  } else {
    kv.push(['mode', 'normal']);
  }
  for (const h of s.handler.unavailable) kv.push(['handler', `UNAVAILABLE since ${formatAgo(h.since, v.now)} on ${h.workerId}: ${h.why}`]);
  const files = STATUSES.map((st) => `${st} ${formatCount(s.counts[st])}`).join('  ');
  const oldest = s.oldestPending === null ? 'none waiting' : formatDuration((s.oldestPending.ageSeconds ?? 0) * 1000);
  kv.push(['files', files], ['oldest pending', oldest]);
  const rates = formatTable(
    [{ header: 'PER SECOND' }, { header: 'DISCOVERED', align: 'right' }, { header: 'COMPLETED', align: 'right' }, { header: 'FAILED', align: 'right' }],
    s.rates.map((r) => [`last ${formatSpan(r.windowMs)}`, rate(r.perSecond.discovered), rate(r.perSecond.completed), rate(r.perSecond.failed)]),
  );
  return [...formatKeyValues(kv).split('\n'), '', ...rates.split('\n')];
}

/** `0`, `0.03`, `2.4`, `118`: two significant figures or so, so that one failure a minute still shows. */
export function rate(n: number): string {
  if (n === 0) return '0';
  if (n < 0.1) return n.toFixed(2);
  if (n < 10) return n.toFixed(1);
  return n.toFixed(0);
}

function inFlight(s: TopJson, v: View): Section {
  return {
    title: `IN FLIGHT ${s.counts.processing} (longest first)`,
    columns: [{ header: 'ELAPSED', align: 'right' }, { header: 'ATTEMPT', align: 'right' }, { header: 'WORKER' }, { header: 'FILE' }],
    rows: s.inFlight.map((f) => [
      f.elapsedSeconds === null ? '-' : formatDuration(f.elapsedSeconds * 1000),
      String(f.attempt),
      f.workerId ?? '-',
      tail(f.fileUrl, v.width - 40),
    ]),
    none: 'no file is being handled',
  };
}

function backlog(s: TopJson, v: View): Section {
  return {
    title: `BACKLOG ${formatCount(s.counts.pending + s.counts.failed)} (by folder and type)`,
    columns: [{ header: 'PENDING', align: 'right' }, { header: 'RETRYING', align: 'right' }, { header: 'OLDEST', align: 'right' }, { header: 'TYPE' }, { header: 'FOLDER' }],
    rows: s.backlog.map((g) => [
      formatCount(g.pending),
      formatCount(g.retrying),
      g.oldestPendingAgeSeconds === null ? '-' : formatDuration(g.oldestPendingAgeSeconds * 1000),
      g.fileType,
      tail(g.folder, v.width - 45),
    ]),
    none: 'nothing waiting',
  };
}

function workers(s: TopJson, v: View): Section {
  return {
    title: 'WORKERS',
    columns: [{ header: 'HEARTBEAT', align: 'right' }, { header: 'STATE' }, { header: 'MODE' }, { header: 'PID', align: 'right' }, { header: 'HOST' }, { header: 'WORKER' }],
    // A worker degraded by a lock cannot write its row: its state file (s.mode) says so instead.
    rows: s.workers.map((w) => [formatAgo(w.heartbeatAt, v.now), w.state, s.mode.workers.includes(w.workerId) ? 'degraded' : w.mode, String(w.pid), w.host, w.workerId]),
    none: 'no ckpt process is registered with this database (is `ckpt run` running?)',
  };
}

function failures(s: TopJson, v: View): Section {
  // The path gets what the longest error leaves (the other columns take about 33), and never
  // less than a third of the width: the error is what the operator came for.
  const longest = Math.max(0, ...s.failures.map((f) => [...f.summary].length));
  const fileRoom = Math.max(Math.floor(v.width / 3), v.width - 33 - longest);
  return {
    title: 'LAST FAILURES',
    columns: [{ header: 'WHEN', align: 'right' }, { header: 'ATTEMPT', align: 'right' }, { header: 'OUTCOME' }, { header: 'FILE' }, { header: 'ERROR' }],
    rows: s.failures.map((f) => [formatAgo(f.endedAt, v.now), String(f.attempt), f.outcome, tail(f.fileUrl, fileRoom), f.summary]),
    none: 'none',
  };
}

/**
 * The section's title and table with at most `rows` rows; the last says how many more when some
 * are left out (with room for two rows or more: a single row shows the first).
 */
function section(x: Section, rows: number): string[] {
  if (x.rows.length === 0) return [`${x.title}: ${x.none}`];
  if (rows === 0) return [`${x.title}: ${formatCount(x.rows.length)} not shown (no room)`];
  const cut = rows < x.rows.length && rows >= 2;
  const fit = x.rows.slice(0, cut ? rows - 1 : rows);
  const lines = [x.title, ...formatTable(x.columns, fit).split('\n')];
  if (cut) lines.push(`… ${formatCount(x.rows.length - fit.length)} more`);
  return lines;
}

/**
 * Rows for each list out of `room` lines (each list's title and header are already counted
 * out): one each first, then one at a time in turn, while any list wants more.
 */
export function share(wanted: readonly number[], room: number): number[] {
  const out = wanted.map(() => 0);
  let left = room;
  for (let grew = true; grew && left > 0; ) {
    grew = false;
    for (let i = 0; i < wanted.length && left > 0; i++) {
      if (out[i]! < wanted[i]!) {
        out[i]!++;
        left--;
        grew = true;
      }
    }
  }
  return out;
}

/** `s` (made printable) cut to `width` terminal columns, counting code points. */
export function clip(s: string, width: number): string {
  if (!Number.isFinite(width)) return s;
  const chars = [...s];
  return chars.length <= width ? s : chars.slice(0, Math.max(0, width)).join('');
}

/** The end of a path, which names the file, when the whole does not fit in `max` (at least 16). */
function tail(p: string, max: number): string {
  const safe = printable(p);
  const keep = Math.max(16, max);
  if (!Number.isFinite(keep)) return safe;
  const chars = [...safe];
  return chars.length <= keep ? safe : `…${chars.slice(chars.length - keep + 1).join('')}`;
}
