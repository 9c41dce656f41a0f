/**
 * The shape of ckpt.config.json, as zod 4 schemas. Every object is strict (an unknown key is
 * an error: a misspelt "recursiv" must not silently fall back to a default), and every error
 * message says what was expected and what was found, in words an operator can act on.
 *
 * This file only checks shapes and fills defaults. Paths stay as written here; resolve.ts
 * makes them absolute (relative to the config file's folder) and checks the folders exist.
 *
 * Keys (defaults in DEFAULTS below):
 *   database      "var/ckpt.db" | "postgres://..." | {"url": "...", "schema"?} | {"urlEnv": "VAR", "schema"?}
 *   watch         [{dir, include?, exclude?, fileType?, poll?, readyMarker?, recursive?, readiness?, allowOtherLedgers?,
 *                   handler?, concurrency?, retry?, onSuccess?, onDead?}, ...]   (the last five: the folder's route)
 *   handler       {command: [argv...], timeoutMs?, killGraceMs?} | {module: "./h.mjs", timeoutMs?}
 *                 Relative program paths inside `command` are NOT rewritten: the daemon runs
 *                 command handlers with cwd = the config file's folder, so they resolve there.
 *   concurrency, leaseMs, stableMs, rescanMs, shutdownGraceMs, lockTimeoutMs
 *   retry         {maxRetries, baseDelayMs, maxDelayMs}
 *   onSuccess / onDead   "keep" | "delete" | {"moveTo": "folder"}
 *   onChange      "reprocess" | "ignore"
 *   log           {level, format}
 *   http          {port, host?}            (off when absent)
 *   workerId, fileMode ("0600"), group, createDirs (create missing watch/moveTo folders)
 *   pathPrefixes  [{local: "/mnt/a/share", shared: "/share"}, ...]   (per-host mount points)
 *   fallbackDir   "/var/lib/ckpt/fallback"  (degraded-mode journals and claim markers; required
 *                 with PostgreSQL, default `<database>.fallback` with SQLite)
 *   retention     {completed?, dead?, tombstones?}  durations such as "30d" (off when absent)
 */
import { z } from 'zod';
import { LOG_FORMATS, LOG_LEVELS } from './types.js';
import { parseDuration } from './duration.js';
import { show } from './show.js';

/**
 * Node timers hold at most 2^31-1 ms (about 24.8 days); a longer delay fires after 1 ms with a
 * TimeoutOverflowWarning, which would turn "wait a month" into "retry at once".
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Upper bound on concurrency. Each slot can be a child process with three pipes; the common
 * default `ulimit -n` is 1024 descriptors, so far more than this cannot work anyway, and a
 * typo (4000 for 4) should be an error, not a fork storm.
 */
export const MAX_CONCURRENCY = 256;

export const DEFAULTS = Object.freeze({
  concurrency: 4,
  leaseMs: 30_000,
  stableMs: 2_000,
  rescanMs: 60_000,
  retry: Object.freeze({ maxRetries: 3, baseDelayMs: 1_000, maxDelayMs: 300_000 }),
  onChange: 'reprocess' as const,
  shutdownGraceMs: 10_000,
  lockTimeoutMs: 5_000,
  logLevel: 'info' as const,
  logFormat: 'auto' as const,
  httpHost: '127.0.0.1',
  /** Owner-only: the database holds paths and error messages that may be sensitive. */
  fileMode: 0o600,
  /**
   * A handler that hangs (a sink that never answers) keeps extending its lease and would hold
   * a slot forever; ten minutes is far above what one file normally takes and can be raised.
   */
  handlerTimeoutMs: 600_000,
  /** Same as src/run/command-handler.ts DEFAULT_KILL_GRACE_MS. */
  killGraceMs: 5_000,
});

/** Placeholders a command argv item may contain; see src/run/command-handler.ts. */
export const ARGV_PLACEHOLDERS: readonly string[] = Object.freeze(['path']);

// ---------------------------------------------------------------------------------------------
// Building blocks. Each takes a description of what is expected and uses it for every way the
// value can be wrong, so that messages stay uniform: "expected X, got Y".

type Iss = { readonly input?: unknown };

/** The error callback shared by every check of one value. */
export function expected(what: string): (iss: Iss) => string {
  return (iss) => (iss.input === undefined ? `missing: expected ${what}` : `expected ${what}, got ${show(iss.input)}`);
}

function integer(min: number, max: number, unit = '') {
  const low = expected(`an integer >= ${min}${unit}`);
  const high = expected(`an integer <= ${max}${unit}`);
  return z.number({ error: low }).int({ error: low }).min(min, { error: low }).max(max, { error: high });
}

/** Milliseconds, bounded by what a Node timer can wait. */
function ms(min: number) {
  return integer(min, MAX_TIMER_MS, ' (milliseconds)');
}

function text(what: string) {
  const e = expected(what);
  return z
    .string({ error: e })
    .min(1, { error: e })
    .refine((s) => !s.includes('\0'), { error: `expected ${what} without NUL characters` });
}

/** A file or folder path; relative ones are resolved against the config file's folder. */
const pathText = text('a path (relative to the config file, or absolute)');

/**
 * A strict object: an unknown key is an error that lists what is allowed, and names the
 * closest allowed key when the unknown one looks like a typo.
 */
function strictObject<S extends z.core.$ZodLooseShape>(shape: S, what: string) {
  const allowed = Object.keys(shape);
  const wrongType = expected(what);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') return unknownKeysMessage(iss.keys, allowed);
      return wrongType(iss);
    },
  });
}

export function unknownKeysMessage(keys: readonly string[], allowed: readonly string[]): string {
  if (keys.length === 1 && keys[0] !== undefined) {
    const key = keys[0];
    const near = closest(key, allowed);
    return near === undefined
      ? `unknown key ${JSON.stringify(key)} (allowed: ${allowed.join(', ')})`
      : `unknown key ${JSON.stringify(key)} (did you mean ${JSON.stringify(near)}?)`;
  }
  return `unknown keys ${keys.map((k) => JSON.stringify(k)).join(', ')} (allowed: ${allowed.join(', ')})`;
}

/** The allowed key within edit distance 2 (case-insensitive), if any. */
function closest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64 || b.length > 64) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 99;
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expected(`one of ${values.map((v) => JSON.stringify(v)).join(', ')}`) });
}

// ---------------------------------------------------------------------------------------------
// Leaf values, exported so that environment variables and flags are checked by the same rules.

export const concurrencySchema = integer(1, MAX_CONCURRENCY);
export const logLevelSchema = oneOf(LOG_LEVELS);
export const logFormatSchema = oneOf(LOG_FORMATS);
export const portSchema = integer(0, 65_535);
export const workerIdSchema = text('a non-empty worker id');

const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const POSTGRES_SCHEMES = new Set(['postgres', 'postgresql']);

/** True for the strings that name a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(s: string): boolean {
  const m = URL_SCHEME.exec(s);
  return m !== null && POSTGRES_SCHEMES.has((m[1] ?? '').toLowerCase());
}

/** A URL that parses and is postgres:// or postgresql://. */
function checkPostgresUrl(url: string, ctx: z.core.$RefinementCtx<string>): void {
  if (!isPostgresUrl(url)) {
    ctx.addIssue({ code: 'custom', message: `expected a postgres:// or postgresql:// URL, got ${show(url)}` });
    return;
  }
  try {
    new URL(url);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected a valid PostgreSQL URL, got ${show(url)}` });
  }
}

/**
 * The database as one string: a SQLite file path, or a PostgreSQL URL kept as written. Any
 * other `scheme://` is refused rather than taken for a (strange) file name.
 */
export const databaseStringSchema = text('a database file path or a postgres:// URL').superRefine((s, ctx) => {
  if (URL_SCHEME.test(s)) checkPostgresUrl(s, ctx);
});

const PG_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const databaseObjectSchema = strictObject(
  {
    url: text('a postgres:// URL').superRefine(checkPostgresUrl).optional(),
    urlEnv: z
      .string({ error: expected('the name of an environment variable') })
      .regex(ENV_NAME, { error: expected('the name of an environment variable (letters, digits, _)') })
      .optional(),
    schema: z
      .string({ error: expected('a PostgreSQL schema name') })
      .regex(PG_IDENTIFIER, { error: expected('a PostgreSQL schema name (letters, digits, _; at most 63)') })
      .optional(),
  },
  'a database object {"url": "postgres://..."} or {"urlEnv": "CKPT_PG_URL"}',
).superRefine((db, ctx) => {
  if ((db.url === undefined) === (db.urlEnv === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'expected exactly one of "url" or "urlEnv"' });
  }
});

export const databaseSchema = z.union([databaseStringSchema, databaseObjectSchema], {
  error: expected('a database file path, a postgres:// URL, or {"url": ...} / {"urlEnv": ...}'),
});

const globList = z.array(
  text('a glob pattern').refine((g) => !g.startsWith('/'), {
    error: 'expected a glob relative to the watched folder (it is matched against the path below "dir"), not an absolute one',
  }),
  { error: expected('a list of glob patterns, e.g. ["**/*.csv"]') },
);

const readyMarkerSchema = z.union(
  [
    text('a marker suffix such as ".done"').refine((s) => !s.includes('/'), {
      error: 'expected a marker suffix such as ".done" (a name ending, without "/")',
    }),
    z.null(),
  ],
  { error: expected('a marker suffix such as ".done", or null') },
);

/** `{name}` not preceded by `$` (so `${HOME}` in an `sh -c` script is left alone). */
const PLACEHOLDER = /(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

const argvSchema = z
  .array(
    z
      .string({ error: expected('a string') })
      .refine((s) => !s.includes('\0'), { error: 'expected an argument without NUL characters' })
      .superRefine((arg, ctx) => {
        for (const m of arg.matchAll(PLACEHOLDER)) {
          const name = m[1] ?? '';
          if (!ARGV_PLACEHOLDERS.includes(name)) {
            ctx.addIssue({
              code: 'custom',
              message: `unknown placeholder {${name}} (known: ${ARGV_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`,
            });
          }
        }
      }),
    { error: expected('an argv list such as ["node", "handler.mjs", "{path}"]') },
  )
  .min(1, { error: expected('a non-empty argv list such as ["node", "handler.mjs", "{path}"]') })
  .superRefine((argv, ctx) => {
    if (argv[0] === '') ctx.addIssue({ code: 'custom', path: [0], message: 'expected the program to run, got ""' });
  });

export const handlerSchema = strictObject(
  {
    command: argvSchema.optional(),
    module: pathText.optional(),
    timeoutMs: ms(1).default(DEFAULTS.handlerTimeoutMs),
    killGraceMs: ms(0).optional(),
  },
  'a handler {"command": [...]} or {"module": "./handler.mjs"}',
).superRefine((h, ctx) => {
  if ((h.command === undefined) === (h.module === undefined)) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected exactly one of "command" (an argv list) or "module" (a path to an ES module)',
    });
  }
  if (h.module !== undefined && h.killGraceMs !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['killGraceMs'],
      message: 'applies only to a "command" handler (a module runs inside the daemon and cannot be killed)',
    });
  }
});

export const afterActionSchema = z.union(
  [z.literal('keep'), z.literal('delete'), strictObject({ moveTo: pathText }, '{"moveTo": "folder"}')],
  { error: expected('"keep", "delete" or {"moveTo": "folder"}') },
);

const retrySchema = strictObject(
  {
    maxRetries: integer(0, 1_000_000).default(DEFAULTS.retry.maxRetries),
    baseDelayMs: ms(0).default(DEFAULTS.retry.baseDelayMs),
    maxDelayMs: ms(0).default(DEFAULTS.retry.maxDelayMs),
  },
  'a retry object {"maxRetries", "baseDelayMs", "maxDelayMs"}',
).superRefine((r, ctx) => {
  if (r.maxDelayMs < r.baseDelayMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['maxDelayMs'],
      message: `expected at least baseDelayMs (${r.baseDelayMs}), got ${r.maxDelayMs}`,
    });
  }
});

/**
 * A route's retry: a member left out is the top-level one (resolve.ts merges them and then
 * checks maxDelayMs against baseDelayMs), so no defaults here.
 */
const routeRetrySchema = strictObject(
  {
    maxRetries: integer(0, 1_000_000).optional(),
    baseDelayMs: ms(0).optional(),
    maxDelayMs: ms(0).optional(),
  },
  'a retry object {"maxRetries", "baseDelayMs", "maxDelayMs"}',
);

export const watchSchema = strictObject(
  {
    dir: pathText,
    include: globList.optional(),
    exclude: globList.optional(),
    fileType: text('a non-empty file type name').optional(),
    poll: z.union([z.boolean(), z.literal('auto')], { error: expected('true, false or "auto"') }).default('auto'),
    readyMarker: readyMarkerSchema.default(null),
    recursive: z.boolean({ error: expected('true or false') }).default(true),
    readiness: z.enum(['auto', 'stability'], { error: expected('"auto" or "stability"') }).default('auto'),
    allowOtherLedgers: z.boolean({ error: expected('true or false') }).default(false),
    // The folder's route (docs/routes.md): each one left out is the top-level setting.
    handler: handlerSchema.optional(),
    concurrency: concurrencySchema.optional(),
    retry: routeRetrySchema.optional(),
    onSuccess: afterActionSchema.optional(),
    onDead: afterActionSchema.optional(),
  },
  'a watched folder {"dir": "..."}',
);

const logSchema = strictObject(
  {
    level: logLevelSchema.default(DEFAULTS.logLevel),
    format: logFormatSchema.default(DEFAULTS.logFormat),
  },
  'a log object {"level": "info"}',
);

const httpSchema = strictObject(
  {
    port: portSchema,
    host: text('a host name or address').default(DEFAULTS.httpHost),
  },
  'an http object {"port": 9464}',
);

/** "0600", "640": octal permission bits, which JSON has no literal for. */
const fileModeSchema = z
  .string({ error: expected('an octal permission string such as "0600" (a JSON number would be read as decimal)') })
  .regex(/^0?[0-7]{3}$/, { error: expected('an octal permission string such as "0600" or "0640"') })
  .transform((s) => Number.parseInt(s, 8))
  .refine((mode) => (mode & 0o600) === 0o600, {
    error: 'expected a mode that lets the owner read and write (ckpt must open its own database), e.g. "0600"',
  });

const groupSchema = z.union(
  [text('a group name'), integer(0, 4_294_967_294)],
  { error: expected('a group name or a numeric group id') },
);

/**
 * One per-host prefix: `local` is where this host sees the share (a path, relative ones against
 * the config file's folder), `shared` the name every host records in the ledger. Nesting and
 * duplicates are checked across the list in resolve.ts, after `local` is made absolute.
 */
const pathPrefixSchema = strictObject(
  {
    local: pathText,
    shared: text('the name every host uses for this folder in the ledger, such as "/share"').refine((s) => !s.endsWith('/'), {
      error: 'expected a name without a trailing "/" (the rest of the path, "/in/x.csv", is appended to it)',
    }),
  },
  'a prefix {"local": "/mnt/a/share", "shared": "/share"}',
);

const pathPrefixesSchema = z.array(pathPrefixSchema, {
  error: expected('a list of prefixes, e.g. [{"local": "/mnt/a/share", "shared": "/share"}]'),
});

/** A duration as the CLI takes it ("30d", "12h"), in milliseconds. */
const durationSchema = z.string({ error: expected('a duration such as "30d" or "12h"') }).transform((s, ctx) => {
  try {
    const ms = parseDuration(s);
    if (ms > 0) return ms;
    ctx.addIssue({ code: 'custom', message: `expected a duration above 0, got ${show(s)}` });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
  return z.NEVER;
});

/** How long finished rows (and, optionally, the tombstones they leave) are kept. */
const retentionSchema = strictObject(
  {
    completed: durationSchema.optional(),
    dead: durationSchema.optional(),
    tombstones: durationSchema.optional(),
  },
  'a retention object {"completed": "30d", "dead": "90d"}',
);

/**
 * The whole file. `database` is optional here only because CKPT_DATABASE or --database may
 * supply it; resolve.ts reports it missing when none of them does.
 */
export const fileSchema = strictObject(
  {
    database: databaseSchema.optional(),
    watch: z
      .array(watchSchema, { error: expected('a list of folders to watch, e.g. [{"dir": "inbox"}]') })
      .min(1, { error: expected('a non-empty list of folders to watch') }),
    handler: handlerSchema,
    concurrency: concurrencySchema.default(DEFAULTS.concurrency),
    leaseMs: ms(100).default(DEFAULTS.leaseMs),
    stableMs: ms(0).default(DEFAULTS.stableMs),
    rescanMs: ms(0).default(DEFAULTS.rescanMs),
    retry: retrySchema.prefault({}),
    onSuccess: afterActionSchema.default('keep'),
    onDead: afterActionSchema.default('keep'),
    onChange: oneOf(['reprocess', 'ignore']).default(DEFAULTS.onChange),
    shutdownGraceMs: ms(0).default(DEFAULTS.shutdownGraceMs),
    lockTimeoutMs: ms(0).default(DEFAULTS.lockTimeoutMs),
    log: logSchema.prefault({}),
    http: httpSchema.optional(),
    workerId: workerIdSchema.optional(),
    fileMode: fileModeSchema.default(DEFAULTS.fileMode),
    group: groupSchema.optional(),
    createDirs: z.boolean({ error: expected('true or false') }).default(false),
    pathPrefixes: pathPrefixesSchema.default([]),
    fallbackDir: text('a folder on a local disk for degraded-mode journals and claim markers').optional(),
    retention: retentionSchema.optional(),
  },
  'a JSON object with the ckpt settings (see config/examples/)',
);

/** The file after shape checks and defaults, paths still as written. */
export type FileConfig = z.output<typeof fileSchema>;
export type RawAfterAction = z.output<typeof afterActionSchema>;
export type RawHandler = z.output<typeof handlerSchema>;
export type RawWatch = z.output<typeof watchSchema>;
export type RawDatabase = z.output<typeof databaseSchema>;
