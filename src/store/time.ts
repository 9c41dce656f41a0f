/**
 * Times are stored as ISO-8601 UTC text with milliseconds (`2026-11-28T03:54:28.123Z`): the
 * sqlite3 shell shows them as they are, and the fixed width makes text order equal time order,
 * so `due_at <= ?` works on an index without conversions.
 */
export function iso(ms: number): string {
  // A completion batch stamps many rows with the same millisecond: Date#toISOString was 3 us
  // of the no-op pipeline's 87 us of CPU per file, half of it the same value again.
  if (ms === lastMs) return lastIso;
  lastIso = new Date(ms).toISOString();
  lastMs = ms;
  return lastIso;
}
let lastMs = Number.NaN;
let lastIso = '';

export function fromIso(s: string | null | undefined): number | null {
  if (s === null || s === undefined) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}
