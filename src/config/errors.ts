/**
 * ConfigError: the one error the configuration module throws. Its message is meant for the
 * operator as is (the CLI prints only `.message`, no stack): it names where the setting came
 * from (the file, an environment variable or a flag), the key, and what was expected.
 *
 *   ckpt.config.json: watch[0].dir: folder /x/y does not exist
 *   ckpt.config.json: concurrency: expected an integer >= 1, got "four"
 *   CKPT_CONCURRENCY: expected an integer >= 1, got "four"
 */
import type { z } from 'zod';
import { EXIT } from '../cli/exit-codes.js';

/** sysexits EX_CONFIG (the entry of the one exit-code table): the configuration is unusable. */
export const EX_CONFIG = EXIT.CONFIG;

export class ConfigError extends Error {
  readonly exitCode = EX_CONFIG;
  /** Where the bad setting came from: the config file as named by the caller, an env var, a flag. */
  readonly source: string | undefined;
  /** Key path of the first problem (`watch[0].dir`), when there is one. */
  readonly key: string | undefined;

  constructor(message: string, opts: { source?: string; key?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ConfigError';
    this.source = opts.source;
    this.key = opts.key;
  }

  /** `source: key: problem`, leaving out the parts that are empty. */
  static at(source: string, key: string, problem: string): ConfigError {
    const where = key === '' ? source : `${source}: ${key}`;
    return new ConfigError(`${where}: ${problem}`, { source, key });
  }
}

/** `watch[0].dir`, `retry.maxRetries`, `["odd key"]`. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

interface Problem {
  path: PropertyKey[];
  message: string;
}

/** Issue codes that mean "this union branch is not the type the user wrote at all". */
const TYPE_MISMATCH = new Set(['invalid_type', 'invalid_value', 'invalid_union']);

/**
 * Flattens zod issues into (path, message) pairs. A union that failed is replaced by the
 * problems of the one branch whose type matched what the user wrote (a database object with a
 * bad key reports that key, not "invalid input"); when no single branch matched, the union's
 * own message (which lists the accepted forms) is used.
 */
function flatten(issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[], out: Problem[]): void {
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const matching = issue.errors.filter((branch) =>
        branch.some((b) => b.path.length > 0 || !TYPE_MISMATCH.has(b.code)),
      );
      const only = matching.length === 1 ? matching[0] : undefined;
      if (only !== undefined) {
        flatten(only, path, out);
        continue;
      }
    }
    out.push({ path, message: issue.message });
  }
}

/** Problems shown in one error; beyond this the rest are counted. */
const MAX_SHOWN_PROBLEMS = 10;

/** One problem with the configuration: the key path (`watch[0].dir`, '' for the whole file) and its `source: key: problem` line. */
export interface ConfigProblem {
  key: string;
  message: string;
}

/** Every problem zod found, as ConfigProblems (an environment variable's value has no key path). */
export function zodProblems(source: string, error: z.ZodError): ConfigProblem[] {
  const problems: Problem[] = [];
  flatten(error.issues, [], problems);
  return problems.map((p) => {
    const key = formatKeyPath(p.path);
    return { key, message: key === '' ? `${source}: ${p.message}` : `${source}: ${key}: ${p.message}` };
  });
}

/**
 * A ConfigError listing every problem zod found, one per line, each as `source: key: problem`
 * (an environment variable's value is checked on its own: its problems have no key path).
 */
export function configErrorFromZod(source: string, error: z.ZodError): ConfigError {
  const problems = zodProblems(source, error);
  const lines = problems.slice(0, MAX_SHOWN_PROBLEMS).map((p) => p.message);
  if (problems.length > MAX_SHOWN_PROBLEMS) lines.push(`... and ${problems.length - MAX_SHOWN_PROBLEMS} more`);
  return new ConfigError(lines.join('\n'), { source, key: problems[0]?.key });
}
