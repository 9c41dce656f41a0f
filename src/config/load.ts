/**
 * loadConfig(): the one way to get a configuration. Precedence, lowest first:
 *
 *   defaults (schema.ts DEFAULTS) < ckpt.config.json < environment (env.ts ENV_VARS) < flags
 *
 * Anything wrong comes back as a ConfigError (exit code 78) whose message names the file or
 * variable, the key, and what was expected; nothing else is thrown for bad input.
 */
import fs from 'node:fs';
import path from 'node:path';
import { envLayer, overridesLayer } from './env.js';
import { ConfigError, configErrorFromZod } from './errors.js';
import { parseJson } from './json.js';
import { resolveConfig } from './resolve.js';
import { fileSchema } from './schema.js';
import type { LoadOptions, ResolvedConfig } from './types.js';

/**
 * Reads, checks and resolves the config file at `configPath` (relative to `opts.cwd`).
 * Side effects, on success only: the database's folder is created when missing, and with
 * "createDirs": true also missing watch and moveTo folders.
 */
export function loadConfig(configPath: string, opts: LoadOptions = {}): ResolvedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const display = configPath;
  const absPath = path.resolve(cwd, configPath);

  const checked = fileSchema.safeParse(readConfigJson(absPath, display));
  if (!checked.success) throw configErrorFromZod(display, checked.error);

  // Environment before flags: the later layer wins.
  const layers = [envLayer(env, cwd), overridesLayer(opts.overrides ?? {}, cwd)];
  const resolved = resolveConfig(checked.data, layers, {
    display,
    configPath: absPath,
    configDir: path.dirname(absPath),
    env,
  });
  return deepFreeze(resolved);
}

/** The config file's JSON value; a ConfigError when it cannot be read, is empty or is not JSON. */
export function readConfigJson(absPath: string, display: string): unknown {
  const text = readConfigText(absPath, display);
  if (text.trim() === '') throw new ConfigError(`${display}: the file is empty; expected a JSON object`, { source: display });
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const e = parsed.error;
    throw new ConfigError(
      typeof e === 'string'
        ? `${display}: not valid JSON: ${e}`
        : `${display}: not valid JSON at line ${e.line}, column ${e.column}: ${e.problem}`,
      { source: display },
    );
  }
  return parsed.value;
}

function readConfigText(absPath: string, display: string): string {
  try {
    return fs.readFileSync(absPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? `config file not found (looked for ${absPath}; pass --config PATH)`
        : code === 'EISDIR'
          ? `${absPath} is a folder; expected the path of a JSON config file`
          : code === 'EACCES' || code === 'EPERM'
            ? `cannot read ${absPath}: permission denied`
            : `cannot read ${absPath}: ${code ?? String(err)}`;
    throw new ConfigError(`${display}: ${why}`, { source: display, cause: err });
  }
}

/** Freezes `value` and everything reachable from it; returns it with its type unchanged. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

// The configuration module's public surface, so that callers need one import.
export { ConfigError, EX_CONFIG } from './errors.js';
export { ENV_VARS, OVERRIDE_FLAGS } from './env.js';
export { redactConfig, redactSecrets } from './redact.js';
export { DEFAULTS } from './schema.js';
export type * from './types.js';
