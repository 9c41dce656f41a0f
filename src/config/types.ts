/**
 * The resolved configuration: what loadConfig() returns after defaults, the file, the
 * environment and the command line were merged, checked, and every path made absolute.
 * Deeply frozen: nothing downstream can change it, so every module sees the same settings.
 */
import type { PathPrefix } from '../store/path-map.js';
import type { ChangePolicy, RetryPolicy } from '../store/types.js';

/** pino's levels; `silent` turns logging off. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * `auto`: human-readable when stdout is a terminal, JSON lines otherwise (a pipe, a file,
 * journald). `json` / `pretty` force one of them.
 */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type DatabaseConfig =
  | {
      readonly kind: 'sqlite';
      /** Absolute path of the database file; its folder exists once loadConfig returned. */
      readonly path: string;
    }
  | {
      readonly kind: 'postgres';
      /** The connection URL, as given (it may hold a password: log redactConfig(cfg) only). */
      readonly url: string;
      /** PostgreSQL schema holding ckpt's tables. */
      readonly schema: string;
      /** The environment variable the URL was read from, when it came from `urlEnv`. */
      readonly urlEnv: string | null;
    };

export interface WatchConfig {
  /** Absolute path of the watched folder. */
  readonly dir: string;
  /**
   * picomatch globs matched against the path relative to `dir` (`/`-separated). Empty means
   * every file. See src/watch/filter.ts for how a glob without `/` matches at any depth.
   */
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  /** Recorded with each file; defaults to the folder's basename. */
  readonly fileType: string;
  /** `auto`: poll when the folder is on a network file system (see src/mounts.ts). */
  readonly poll: boolean | 'auto';
  /** Suffix of a marker file that says the file beside it is complete (".done"), or null. */
  readonly readyMarker: string | null;
  /** Watch sub-folders too. */
  readonly recursive: boolean;
  /**
   * `auto`: a file is ready at its close or its rename into the folder where the kernel says so
   * (docs/native.md); `stability`: always the stability timer (writers that close between chunks).
   */
  readonly readiness: 'auto' | 'stability';
  /**
   * The folder may be watched by daemons on other databases too, on purpose (each runs every
   * file). Default false: the first ledger owns the folder (src/watch/folder-ownership.ts).
   */
  readonly allowOtherLedgers: boolean;
  /**
   * The folder's own handler, slot cap, retry policy and after-actions (docs/routes.md), each
   * filled from the top level where the entry leaves it out. Absent when the entry sets none of
   * them: its files run under the top-level settings, as before routes existed.
   */
  readonly route?: RouteConfig;
}

/** A route: how the files of one file type run. Chosen by the file's type when it is claimed. */
export interface RouteConfig {
  readonly handler: HandlerConfig;
  /** At most this many of the process's `concurrency` slots run this route's files. */
  readonly concurrency: number;
  readonly retry: Readonly<RetryPolicy>;
  readonly onSuccess: AfterAction;
  readonly onDead: AfterAction;
}

/**
 * How the daemon runs a file. Relative program paths inside `command` are NOT rewritten: the
 * daemon runs command handlers with `cwd` (the config file's folder), so
 * `["node", "scripts/example-handler.mjs", "{path}"]` works from wherever ckpt was started.
 */
export type HandlerConfig =
  | {
      readonly kind: 'command';
      /** argv; `{path}` inside any item is replaced by the file's absolute path. */
      readonly command: readonly string[];
      readonly timeoutMs: number;
      /** Time between SIGTERM and SIGKILL when ckpt stops a handler. */
      readonly killGraceMs: number;
      /** Working folder of the handler process: the config file's folder. */
      readonly cwd: string;
    }
  | {
      readonly kind: 'module';
      /** Absolute path of the ES module (its default export is called per file). */
      readonly module: string;
      readonly timeoutMs: number;
    };

/** What happens to a file after it completed (onSuccess) or went dead (onDead). */
export type AfterAction =
  | { readonly kind: 'keep' }
  | { readonly kind: 'delete' }
  /** Move into `dir` (absolute; it exists once loadConfig returned). */
  | { readonly kind: 'move'; readonly dir: string };

export interface HttpConfig {
  readonly port: number;
  readonly host: string;
}

export interface LogConfig {
  readonly level: LogLevel;
  readonly format: LogFormat;
}

/**
 * What the daemon purges on its schedule (src/daemon/retention.ts). Each window is in
 * milliseconds; null keeps that kind for ever.
 */
export interface RetentionConfig {
  /** Completed rows (and their attempts) unchanged for longer than this are purged. */
  readonly completedMs: number | null;
  /** Dead rows likewise: they wait for a person, so this is usually longer. */
  readonly deadMs: number | null;
  /** Tombstones older than this are deleted (a purged file put back after that runs again). */
  readonly tombstonesMs: number | null;
}

export interface ResolvedConfig {
  /** Absolute path of the config file that was loaded. */
  readonly configPath: string;
  /** Its folder: relative paths in the file were resolved against it. */
  readonly configDir: string;
  readonly database: DatabaseConfig;
  readonly watch: readonly WatchConfig[];
  readonly handler: HandlerConfig;
  /** Files processed at once. */
  readonly concurrency: number;
  /** Lease on a claimed file; the worker extends it while the handler runs. */
  readonly leaseMs: number;
  /** A file must stay unchanged this long before it is handed on. */
  readonly stableMs: number;
  /** Period of the full rescan that catches missed events; 0 turns periodic rescans off. */
  readonly rescanMs: number;
  readonly retry: Readonly<RetryPolicy>;
  readonly onSuccess: AfterAction;
  readonly onDead: AfterAction;
  readonly onChange: ChangePolicy;
  /** On SIGTERM, how long running handlers get to finish before they are stopped. */
  readonly shutdownGraceMs: number;
  /** How long a store write waits for another process's lock (SQLite busy timeout). */
  readonly lockTimeoutMs: number;
  readonly log: LogConfig;
  /** Metrics/health endpoint; null when off. */
  readonly http: HttpConfig | null;
  /** Undefined: the daemon computes hostname:pid. */
  readonly workerId: string | undefined;
  /** Permission bits for files ckpt creates (the database), e.g. 0o600. */
  readonly fileMode: number;
  /** Group (name or numeric id) for files ckpt creates; undefined leaves the default. */
  readonly group: string | undefined;
  /** Whether missing watch / moveTo folders were created instead of being an error. */
  readonly createDirs: boolean;
  /**
   * This host's mount points and the names the ledger uses for them (src/store/path-map.ts);
   * `local` is absolute. Empty: paths are stored as they are.
   */
  readonly pathPrefixes: readonly PathPrefix[];
  /**
   * Absolute folder for degraded-mode journals, claim markers and state files. Always set for
   * PostgreSQL (required there); absent for SQLite means `<database>.fallback`.
   */
  readonly fallbackDir?: string;
  /** Scheduled purge; null (the key absent): history is kept until `ckpt purge`. */
  readonly retention: RetentionConfig | null;
}

/**
 * Command-line overrides, the last layer. Values may be strings as a CLI parser hands them
 * over ("4"); they are checked like the file's values.
 */
export interface ConfigOverrides {
  database?: string;
  logLevel?: string;
  logFormat?: string;
  concurrency?: number | string;
  workerId?: string;
  httpPort?: number | string;
}

export interface LoadOptions {
  /** Environment to read CKPT_* variables from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  overrides?: ConfigOverrides;
  /**
   * Folder against which a relative database path from the environment or the command line
   * is resolved (default process.cwd()): those were typed relative to where the user is,
   * unlike paths in the file, which are relative to the file.
   */
  cwd?: string;
}
