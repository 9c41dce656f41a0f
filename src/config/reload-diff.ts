/**
 * What a reload (SIGHUP) may change in a running daemon, and what waits for a restart.
 *
 *   diffConfig(running, reread)   -> { live: keys to apply now, restart: keys that changed but stay }
 *   appliedConfig(running, reread, restart) -> the reread config with the restart keys kept as they run
 *
 * A key is "live" when swapping it touches only new claims or cheap state: the handler, the
 * pool size, the retry policy, the log level, the watched folders and their filters, the
 * after-actions, the retention windows. It needs a restart when the running store or process identity depends on it:
 * the database and everything the store was opened with (lockTimeoutMs, onChange, fileMode,
 * group, pathPrefixes, fallbackDir), the worker id (the worker row and claim tokens carry it),
 * the http listener, and the log format (the logger's destination stream is built once).
 */
import { isDeepStrictEqual } from 'node:util';
import type { ResolvedConfig } from './types.js';

type When = 'live' | 'restart';
/** `ignore`: not a setting (the file's own location, which a reload reads again by definition). */
type Rule = When | 'ignore' | { readonly [sub: string]: When };

/** Every key of the resolved config, so that a key added there must be classified here. */
const RULES: { readonly [K in keyof Required<ResolvedConfig>]: Rule } = {
  configPath: 'ignore',
  configDir: 'ignore',
  database: 'restart',
  watch: 'live',
  handler: 'live',
  concurrency: 'live',
  // Renewals re-arm at the new lease / 3 and extend every held claim by the new lease.
  leaseMs: 'live',
  stableMs: 'live',
  rescanMs: 'live',
  retry: 'live',
  onSuccess: 'live',
  onDead: 'live',
  onChange: 'restart',
  shutdownGraceMs: 'live',
  lockTimeoutMs: 'restart',
  log: { level: 'live', format: 'restart' },
  http: 'restart',
  workerId: 'restart',
  fileMode: 'restart',
  group: 'restart',
  // Only the loader reads it (it creates missing folders): nothing to swap.
  createDirs: 'live',
  pathPrefixes: 'restart',
  fallbackDir: 'restart',
  // The next scheduled purge uses the new windows.
  retention: 'live',
};

export interface ConfigDiff {
  /** Changed keys applied by a reload, dotted for nested ones (`log.level`). */
  readonly live: readonly string[];
  /** Changed keys that keep their running value until the next start. */
  readonly restart: readonly string[];
}

export function diffConfig(running: ResolvedConfig, reread: ResolvedConfig): ConfigDiff {
  const live: string[] = [];
  const restart: string[] = [];
  const note = (key: string, when: When, a: unknown, b: unknown) => {
    if (!isDeepStrictEqual(a, b)) (when === 'live' ? live : restart).push(key);
  };
  for (const [key, rule] of Object.entries(RULES) as [keyof ResolvedConfig, Rule][]) {
    if (rule === 'ignore') continue;
    const a: unknown = running[key];
    const b: unknown = reread[key];
    if (typeof rule === 'string') {
      note(key, rule, a, b);
      continue;
    }
    for (const [sub, when] of Object.entries(rule)) note(`${key}.${sub}`, when, (a as Record<string, unknown>)[sub], (b as Record<string, unknown>)[sub]);
  }
  return { live, restart };
}

/** `reread`, except that every key in `restart` keeps its value from `running`. */
export function appliedConfig(running: ResolvedConfig, reread: ResolvedConfig, restart: readonly string[]): ResolvedConfig {
  const out: Record<string, unknown> = { ...reread };
  for (const key of restart) {
    const [top, sub] = key.split('.') as [keyof ResolvedConfig, string | undefined];
    if (sub === undefined) out[top] = running[top];
    else out[top] = { ...(out[top] as Record<string, unknown>), [sub]: (running[top] as unknown as Record<string, unknown>)[sub] };
  }
  return out as unknown as ResolvedConfig;
}
