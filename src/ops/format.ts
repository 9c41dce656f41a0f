/**
 * Human formatting for the CLI and the progress display: counts, ages, durations, and file
 * names made safe to print.
 */

/** `1,204,331`: thousands separated, independent of the machine's locale (stable output). */
export function formatCount(n: number): string {
  const sign = n < 0 ? '-' : '';
  const digits = String(Math.trunc(Math.abs(n)));
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `850ms`, `4.2s`, `3m 05s`, `2h 07m`, `3d 04h`: a duration at the precision people read. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const abs = Math.max(0, ms);
  if (abs < 1_000) return `${Math.round(abs)}ms`;
  if (abs < 10_000) return `${(abs / 1_000).toFixed(1)}s`;
  const s = Math.round(abs / 1_000);
  if (s < 60) return `${s}s`;
  if (s < 3_600) return `${Math.floor(s / 60)}m ${pad2(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h ${pad2(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d ${pad2(Math.floor(s / 3_600) % 24)}h`;
}

/**
 * A duration the way it is typed on the command line: `15s`, `7d`, `1h30m`, `500ms` (exact,
 * unlike formatDuration, which rounds for reading).
 */
export function formatSpan(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0s';
  const units: [string, number][] = [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]];
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

/** `42s ago` for an ISO time in the past; `in 5s` for one in the future; `-` for null. */
export function formatAgo(isoTime: string | null, now: number): string {
  if (isoTime === null) return '-';
  const t = Date.parse(isoTime);
  if (Number.isNaN(t)) return isoTime;
  const d = now - t;
  return d >= 0 ? `${formatDuration(d)} ago` : `in ${formatDuration(-d)}`;
}

/** Seconds (one decimal) between an ISO time and `now`, or null. */
export function ageSeconds(isoTime: string | null, now: number): number | null {
  if (isoTime === null) return null;
  const t = Date.parse(isoTime);
  return Number.isNaN(t) ? null : Math.round((now - t) / 100) / 10;
}

/** `0:07`, `12:30`, `3:04:05`: an ETA. */
export function formatClock(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--:--';
  const s = Math.round(ms / 1_000);
  const h = Math.floor(s / 3_600);
  const m = Math.floor(s / 60) % 60;
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s % 60)}` : `${m}:${pad2(s % 60)}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * A string safe for one cell of a table or one line of output: file names may hold newlines,
 * tabs and escape sequences (the daemon's tests use such names), which would break the layout
 * or drive the terminal. Control characters become `\n`, `\t`, `\xNN`; a backslash is doubled
 * only when something else was escaped, so ordinary Windows-ish names stay readable.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
  if (!CONTROL.test(s)) return s;
  return s.replace(/\\/g, '\\\\').replace(CONTROL, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** `s` cut to `max` characters with an ellipsis. */
export function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Stack frames and runtime banners: never the line that says what went wrong. */
const NOISE = /^(at\s|\^+$|Node\.js v\d|node:internal)/;

/**
 * One printable line that says what went wrong, for a table cell. Handler errors are usually
 * "exit code 1; stderr:" followed by the tail of stderr, where the last meaningful line (not a
 * stack frame) is the one that explains: `exit code 1: sink unavailable: ECONNREFUSED ...`.
 */
export function errorSummary(message: string | null, max = 100): string {
  if (message === null) return '';
  const lines = message.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const first = lines[0] ?? '';
  const last = lines.slice(1).filter((l) => !NOISE.test(l)).at(-1);
  if (last === undefined) return truncate(printable(first), max);
  const head = first.split(/;|\s\(/, 1)[0]!.replace(/:$/, '').trim();
  return truncate(printable(head === '' || head === last ? last : `${head}: ${last}`), max);
}
