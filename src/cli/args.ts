/**
 * Value parsers for options (commander calls them while parsing; an InvalidArgumentError becomes
 * a usage error, exit 64). Kept free of heavy imports: they load with the program.
 */
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../config/duration.js';

export type PurgeStatus = 'completed' | 'dead';

export function durationArg(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function limitArg(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected a whole number >= 0 (0 = no limit), got ${JSON.stringify(value)}`);
  return Number(value);
}

/** `completed`, `dead`, `completed,dead` or `all`. */
export function parsePurgeStatuses(text: string): PurgeStatus[] {
  const out = new Set<PurgeStatus>();
  for (const part of text.split(',').map((s) => s.trim().toLowerCase())) {
    if (part === 'all') {
      out.add('completed').add('dead');
    } else if (part === 'completed' || part === 'dead') {
      out.add(part);
    } else {
      throw new Error(`expected completed, dead, completed,dead or all, got ${JSON.stringify(part)} (only finished files can be purged)`);
    }
  }
  return [...out];
}

export function purgeStatusArg(value: string): PurgeStatus[] {
  try {
    return parsePurgeStatuses(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * `retry` needs files or `--dead`, and `--type` only narrows `--dead`. Checked before the config
 * is read: a usage problem needs no config to be reported.
 */
export function retryUsageProblem(files: readonly string[], opts: { dead?: boolean; type?: string }): string | null {
  if (files.length === 0 && !opts.dead) return 'retry: name the files to requeue, or pass --dead to requeue every dead file';
  if (opts.type !== undefined && !opts.dead) return 'retry: --type selects among dead files; use it with --dead';
  return null;
}
