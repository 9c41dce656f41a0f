/**
 * Durations, on the command line (`--older-than`) and in the config file (`retention`): `30s`,
 * `15m`, `2h`, `7d`, `2w`, `500ms`, and sums such as `1h30m`. A bare number is refused: `--older-than 30` could mean seconds or days, and the
 * wrong guess on `purge` deletes history.
 */
const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;

/** Milliseconds, or throws an Error whose message says what is accepted. */
export function parseDuration(text: string): number {
  const s = text.trim().toLowerCase();
  const usage = `expected a duration such as 30s, 15m, 2h or 7d, got ${JSON.stringify(text)}`;
  if (s === '') throw new Error(usage);
  if (/^\d+(\.\d+)?$/.test(s)) throw new Error(`${usage} (add a unit: s, m, h, d)`);
  PART.lastIndex = 0;
  let total = 0;
  let end = 0;
  for (let m = PART.exec(s); m !== null; m = PART.exec(s)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? Number.NaN);
    end = PART.lastIndex;
  }
  if (end !== s.length || !Number.isFinite(total)) throw new Error(usage);
  return Math.round(total);
}
