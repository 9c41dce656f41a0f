/**
 * The stats line: a command handler reports what it did by printing, as the LAST non-empty line
 * of its stdout, `{"total":n,"filtered":n,"persisted":n}` (non-negative integers; extra keys are
 * ignored). A module handler returns the same object. Pure functions: whatever they are given,
 * they return a result and never throw.
 */

/** Row counts a handler reports for one file. */
export interface RunStats {
  total: number;
  filtered: number;
  persisted: number;
}

export interface StatsLineResult {
  stats: RunStats | null;
  /**
   * Why a line that was meant as a stats line was ignored (the caller logs it as a warning), or
   * null when there was nothing to complain about: stats found, no output, or a last line that
   * is plain text or a JSON object carrying none of the three keys (a handler logging JSON to
   * stdout, e.g. with pino, would otherwise get a warning for every file).
   */
  rejected: string | null;
}

const KEYS = ['total', 'filtered', 'persisted'] as const;

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validates a stats object (a parsed stats line, or what a module handler returned).
 * Returns the three counts, or a reason why `value` is not valid stats.
 */
export function checkStats(value: unknown): { stats: RunStats } | { problem: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: `expected an object {total, filtered, persisted}, got ${describeType(value)}` };
  }
  const rec = value as Record<string, unknown>;
  const bad: string[] = [];
  for (const k of KEYS) {
    const v = rec[k];
    if (!isCount(v)) bad.push(`${k} is ${v === undefined ? 'missing' : describeValue(v)}`);
  }
  if (bad.length > 0) {
    return { problem: `stats must be non-negative integers: ${bad.join(', ')}` };
  }
  // `+ 0` turns a JSON `-0` into 0.
  return {
    stats: { total: (rec.total as number) + 0, filtered: (rec.filtered as number) + 0, persisted: (rec.persisted as number) + 0 },
  };
}

/** The last line of `text` that is not empty or only whitespace, trimmed; null if none. */
export function lastNonEmptyLine(text: string): string | null {
  let end = text.length;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(start, end).trim();
    if (line !== '') return line;
    end = start - 1;
  }
  return null;
}

/**
 * Reads the stats line from a handler's stdout (or the bounded tail of it). See StatsLineResult
 * for when `rejected` is set.
 */
export function readStatsLine(stdout: string): StatsLineResult {
  const line = lastNonEmptyLine(stdout);
  if (line === null || !line.startsWith('{')) return { stats: null, rejected: null };
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { stats: null, rejected: `last stdout line looks like JSON but does not parse: ${clip(line)}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { stats: null, rejected: `last stdout line is JSON but not an object: ${clip(line)}` };
  }
  if (!KEYS.some((k) => Object.hasOwn(parsed as object, k))) return { stats: null, rejected: null };
  const checked = checkStats(parsed);
  if ('stats' in checked) return { stats: checked.stats, rejected: null };
  return { stats: null, rejected: `ignored stats line (${checked.problem}): ${clip(line)}` };
}

/** Stats from a handler's stdout, or null. Never throws. */
export function parseStatsLine(stdout: string): RunStats | null {
  return readStatsLine(stdout).stats;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return `the string ${clip(JSON.stringify(v), 40)}`;
  if (typeof v === 'number') return String(v);
  return describeType(v);
}

/** Keeps log lines short: a rejected line can be up to the whole 4 KB stdout tail. */
function clip(s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`;
}
