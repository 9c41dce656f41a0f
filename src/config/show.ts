/**
 * How a user's value is quoted inside an error message: short, on one line, and with any
 * password in a URL replaced (a bad database URL must not leak its password into the
 * terminal or the journal).
 */
import { redactSecrets } from './redact.js';

const MAX_SHOWN = 80;

export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? redactSecrets(v) : v)) ?? String(value);
  } catch {
    // A structure too deep to stringify: say what it is rather than fail while failing.
    text = Array.isArray(value) ? 'a list' : typeof value;
  }
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 3)}...` : text;
}
