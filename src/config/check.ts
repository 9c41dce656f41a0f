/**
 * checkConfig(): every problem with a config file at once, for `ckpt validate`. loadConfig()
 * stops at the first problem of each stage, which suits a daemon that must not start; an
 * operator fixing a file wants the whole list.
 *
 * The same stages as loadConfig(), in the same order: read and parse the JSON, the schema
 * (zod reports every issue), the environment and flag layers, then the rules across keys in
 * collect mode (resolve.ts). A stage that fails leaves nothing for the next to check, so the
 * list ends there; the schema stage alone usually holds most of a file's mistakes. Nothing is
 * created: the folder checks belong to the caller (src/cli/commands/validate-checks.ts).
 */
import path from 'node:path';
import { envLayer, overridesLayer } from './env.js';
import { ConfigError, zodProblems, type ConfigProblem } from './errors.js';
import { deepFreeze, readConfigJson } from './load.js';
import { resolveConfig } from './resolve.js';
import { fileSchema } from './schema.js';
import type { LoadOptions, ResolvedConfig } from './types.js';

export interface ConfigCheck {
  /** The resolved config when no problem stops resolving it (it may still have problems). */
  config: ResolvedConfig | null;
  problems: ConfigProblem[];
}

export function checkConfig(configPath: string, opts: LoadOptions = {}): ConfigCheck {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const absPath = path.resolve(cwd, configPath);
  const problems: ConfigProblem[] = [];
  const add = (e: unknown): ConfigCheck => {
    if (!(e instanceof ConfigError)) throw e;
    problems.push({ key: e.key ?? '', message: e.message });
    return { config: null, problems };
  };
  let raw: unknown;
  try {
    raw = readConfigJson(absPath, configPath);
  } catch (e) {
    return add(e);
  }
  const checked = fileSchema.safeParse(raw);
  if (!checked.success) return { config: null, problems: zodProblems(configPath, checked.error) };
  const collected: ConfigError[] = [];
  try {
    const layers = [envLayer(env, cwd), overridesLayer(opts.overrides ?? {}, cwd)];
    const ctx = { display: configPath, configPath: absPath, configDir: path.dirname(absPath), env, problems: collected };
    const config = deepFreeze(resolveConfig(checked.data, layers, ctx));
    for (const e of collected) add(e);
    return { config, problems };
  } catch (e) {
    for (const c of collected) add(c);
    return add(e);
  }
}
