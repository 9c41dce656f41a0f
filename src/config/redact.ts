/**
 * Secrets out of anything that gets logged or printed. The only secret a config holds is a
 * password inside a database URL (`postgres://user:secret@host/db`, or `?password=secret`).
 */

const URL_START = /^[a-z][a-z0-9+.-]*:\/\//i;
const PASSWORD_PARAM = /([?&](?:ssl)?password=)[^&#]*/gi;
export const REDACTED = '***';

/**
 * Replaces the password of a URL-shaped string with `***`; any other string comes back as is.
 * Done on the text rather than through `new URL()` so that the rest of the string (which the
 * operator may be trying to debug) is shown exactly as written, and so that a URL too broken
 * to parse is redacted as well.
 */
export function redactSecrets(text: string): string {
  const start = URL_START.exec(text);
  if (start === null) return text;
  const authorityStart = start[0].length;
  let end = text.length;
  for (const stop of ['?', '#']) {
    const i = text.indexOf(stop, authorityStart);
    if (i !== -1 && i < end) end = i;
  }
  let out = text;
  // The userinfo ends at the LAST '@' before the query, not at the first '/': an unescaped
  // '@' or '/' inside a password must not leave part of it visible. Over-redacting a strange
  // path is the cheaper mistake.
  const at = text.lastIndexOf('@', end - 1);
  if (at >= authorityStart) {
    const colon = text.indexOf(':', authorityStart);
    if (colon !== -1 && colon < at) {
      out = `${text.slice(0, colon + 1)}${REDACTED}${text.slice(at)}`;
    }
  }
  return out.replace(PASSWORD_PARAM, `$1${REDACTED}`);
}

/**
 * A deep, unfrozen copy of `cfg` that is safe to log: every string passes through
 * redactSecrets(). Works on any plain data (the resolved config, a raw parsed file, ...).
 */
export function redactConfig<T>(cfg: T): T {
  return redactValue(cfg) as T;
}

function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (Array.isArray(value)) return value.map(redactValue);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v);
    return out;
  }
  return value;
}
