/**
 * The two layers above the file: environment variables, then command-line flags. Each value
 * is checked with the same schema as the file's key, and a bad one is reported under its own
 * name (`CKPT_CONCURRENCY: expected an integer >= 1, got "four"`), since that is what the
 * operator has to fix.
 */
import type { z } from 'zod';
import { ConfigError, configErrorFromZod } from './errors.js';
import {
  concurrencySchema,
  databaseStringSchema,
  logFormatSchema,
  logLevelSchema,
  portSchema,
  workerIdSchema,
} from './schema.js';
import type { ConfigOverrides, LogFormat, LogLevel } from './types.js';

export interface EnvVarDoc {
  readonly name: string;
  /** The config key it overrides. */
  readonly key: string;
  readonly description: string;
}

/**
 * Every environment variable the loader reads (the README lists this table). Precedence:
 * defaults < ckpt.config.json < these < command-line flags. An empty variable counts as unset.
 */
export const ENV_VARS: readonly EnvVarDoc[] = Object.freeze([
  {
    name: 'CKPT_DATABASE',
    key: 'database',
    description: 'SQLite file (a relative path is relative to the current folder) or a postgres:// URL',
  },
  { name: 'CKPT_LOG_LEVEL', key: 'log.level', description: 'fatal, error, warn, info, debug, trace or silent' },
  { name: 'CKPT_CONCURRENCY', key: 'concurrency', description: 'files processed at once' },
  { name: 'CKPT_WORKER_ID', key: 'workerId', description: 'name of this worker in the store (default hostname:pid)' },
  { name: 'CKPT_HTTP_PORT', key: 'http.port', description: 'turns the metrics/health endpoint on at this port' },
] as const);

/** The flag each override stands for, used to name it in error messages. */
export const OVERRIDE_FLAGS: Readonly<Record<keyof ConfigOverrides, string>> = Object.freeze({
  database: '--database',
  logLevel: '--log-level',
  logFormat: '--log-format',
  concurrency: '--concurrency',
  workerId: '--worker-id',
  httpPort: '--http-port',
});

/** What one layer sets. `database` keeps where it came from for later error messages. */
export interface Layer {
  database?: { value: string; source: string; baseDir: string };
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  concurrency?: number;
  workerId?: string;
  httpPort?: number;
}

function check<T>(schema: z.ZodType<T>, value: unknown, source: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw configErrorFromZod(source, r.error);
  return r.data;
}

/** "8" -> 8, so that "expected an integer" complains about 4.5 rather than about a string. */
function numeric(value: unknown): unknown {
  if (typeof value === 'string' && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(value)) return Number(value);
  return value;
}

export function envLayer(env: Readonly<Record<string, string | undefined>>, cwd: string): Layer {
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const layer: Layer = {};
  const database = get('CKPT_DATABASE');
  if (database !== undefined) {
    layer.database = { value: check(databaseStringSchema, database, 'CKPT_DATABASE'), source: 'CKPT_DATABASE', baseDir: cwd };
  }
  const level = get('CKPT_LOG_LEVEL');
  if (level !== undefined) layer.logLevel = check(logLevelSchema, level, 'CKPT_LOG_LEVEL');
  const concurrency = get('CKPT_CONCURRENCY');
  if (concurrency !== undefined) layer.concurrency = check(concurrencySchema, numeric(concurrency), 'CKPT_CONCURRENCY');
  const workerId = get('CKPT_WORKER_ID');
  if (workerId !== undefined) layer.workerId = check(workerIdSchema, workerId, 'CKPT_WORKER_ID');
  const port = get('CKPT_HTTP_PORT');
  if (port !== undefined) layer.httpPort = check(portSchema, numeric(port), 'CKPT_HTTP_PORT');
  return layer;
}

export function overridesLayer(overrides: ConfigOverrides, cwd: string): Layer {
  if (overrides === null || typeof overrides !== 'object') {
    throw new ConfigError(`command-line overrides: expected an object, got ${typeof overrides}`);
  }
  const f = OVERRIDE_FLAGS;
  const layer: Layer = {};
  if (overrides.database !== undefined) {
    layer.database = { value: check(databaseStringSchema, overrides.database, f.database), source: f.database, baseDir: cwd };
  }
  if (overrides.logLevel !== undefined) layer.logLevel = check(logLevelSchema, overrides.logLevel, f.logLevel);
  if (overrides.logFormat !== undefined) layer.logFormat = check(logFormatSchema, overrides.logFormat, f.logFormat);
  if (overrides.concurrency !== undefined) {
    layer.concurrency = check(concurrencySchema, numeric(overrides.concurrency), f.concurrency);
  }
  if (overrides.workerId !== undefined) layer.workerId = check(workerIdSchema, overrides.workerId, f.workerId);
  if (overrides.httpPort !== undefined) layer.httpPort = check(portSchema, numeric(overrides.httpPort), f.httpPort);
  return layer;
}
