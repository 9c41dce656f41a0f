/**
 * The Runner's options and settings, and what it keeps per claim it holds (running or queued).
 * Shared by the claim loop (runner.ts), one file's run (run-one.ts, settle.ts) and the lease
 * renewal (lease-renewal.ts).
 */
import type { Logger } from 'pino';
import type { CheckpointStore, Claim, DiscoveredFile, RetryPolicy } from '../store/types.js';
import type { FileIdentity } from '../file-identity.js';
import type { AfterAction } from './after-action.js';
import type { Handler, HandlerOutcome } from './handler-types.js';

/** What the runner reports to metrics; every method optional so tests can pass nothing. */
export interface RunnerMetrics {
  /** `file`: the watch folder (`RunnerFolder.dir`, '' outside them) and file type, the series labels. */
  claimed?(n: number, file?: FileLabels): void;
  /** `bytes`: the file's size as the handler read it. */
  completed?(durationMs: number, file?: FileLabels, bytes?: number): void;
  failed?(kind: string, durationMs?: number, file?: FileLabels): void;
  leaseTakeovers?(n: number): void;
  discoveryToClaim?(ms: number): void;
}

export type OutcomeKind = 'completed' | 'failed' | 'dead' | 'lost' | 'released';

export interface RunnerFolder {
  dir: string;
  readyMarker: string | null;
  /**
   * The watch config's `poll` (default 'auto': poll on a network file system, as the watcher
   * decides). Files in a polled folder are checked through the thread pool, the others in line
   * (see file-checks.ts).
   */
  poll?: boolean | 'auto';
  /** The folder's file type: picks the route of a file found there without a claim (an unfinished after-action, an expired lease). */
  fileType?: string;
}

export interface RunnerOptions {
  store: CheckpointStore;
  handler: Handler;
  workerId: string;
  /** This machine's name: expired claims of workers named `${host}:pid` get their orphans killed. */
  host: string;
  concurrency: number;
  leaseMs: number;
  folders: readonly RunnerFolder[];
  onSuccess: AfterAction;
  onDead: AfterAction;
  logger: Logger;
  metrics?: RunnerMetrics;
  /** Called after every settled file (for --once and progress). */
  onOutcome?: (fileUrl: string, outcome: OutcomeKind) => void;
  /** A file changed while it was handled: hand its new version to discovery. */
  rediscover?: (file: DiscoveredFile) => Promise<void>;
  /** How often to look for claimable files when nothing woke us (failed files coming due, other processes' discoveries). */
  pollMs?: number;
  now?: () => number;
  /** When the discovery of a file was seen locally, for the discovery-to-claim latency metric. */
  discoveredAt?: (fileUrl: string) => number | undefined;
  /** Decides `poll: 'auto'` (default isNetworkFileSystem from src/mounts.ts, like the watcher). */
  isNetworkFs?: (dir: string) => boolean;
  /**
   * True while the files without a route should not be claimed (the top-level handler's program
   * is gone, see handler-availability.ts): those claimed ahead are given back; call wake() when
   * it turns false. Each route has its own (RunnerRoute.paused).
   */
  paused?: () => boolean;
  /**
   * Per file type: its own handler, cap, retry and after-actions (src/run/lanes.ts). The other
   * types run under `handler`, `onSuccess`, `onDead` and the store's retry policy.
   */
  routes?: readonly RunnerRoute[];
}

/** A route as the runner runs it: the settings of one file type. */
export interface RunnerRoute {
  fileType: string;
  /** Cap on the process's slots for this route's files. */
  concurrency: number;
  handler: Handler;
  retry: RetryPolicy;
  onSuccess: AfterAction;
  onDead: AfterAction;
  /** True while this route's handler program is gone: the lane claims nothing. */
  paused?: () => boolean;
}

/** The options with their defaults filled in. reconfigure() assigns into this one object. */
export type ResolvedRunnerOptions = Required<Pick<RunnerOptions, 'pollMs' | 'now'>> & RunnerOptions;

/**
 * What a reload may swap (src/daemon/reload.ts). The pool size, the route caps and the lease
 * apply at once; the handler, retry, after-actions and folders (the route's, see lanes.ts) are
 * captured with each claim, so a file claimed before a reload runs and settles entirely under
 * the settings it was claimed with.
 */
export type RunnerSettings = Pick<RunnerOptions, 'handler' | 'concurrency' | 'leaseMs' | 'folders' | 'onSuccess' | 'onDead' | 'routes' | 'paused'>;

/** The part of the settings a claim keeps for its whole run: its route's (lanes.ts). */
export type ClaimSettings = Pick<RunnerOptions, 'handler' | 'folders' | 'onSuccess' | 'onDead'> & {
  /** The route's retry policy; absent: the store's. */
  retry?: RetryPolicy;
};

export interface Running {
  claim: Claim;
  settings: ClaimSettings;
  ac: AbortController;
  /** Why we aborted: the lease was lost (do not record anything) or the daemon stops (release). */
  abortedFor: 'lease' | 'shutdown' | null;
  /** The outcome is committed: the claim is over, only the after-action is left (no renewals). */
  settled: boolean;
  /** Device and inode of the file the handler read: after-actions touch only that file. */
  identity?: FileIdentity;
  /** The watched folder the file is in (looked up once: path.relative per folder is not free). */
  folder: RunnerFolder | undefined;
  /** Epoch ms (the runner's clock) when the lease runs out unless renewed. */
  leaseEndsAt: number;
  done: Promise<void>;
}

/** A file claimed ahead of a free slot (fast handlers only), waiting in the local queue. */
export interface Queued {
  claim: Claim;
  settings: ClaimSettings;
  /** Epoch ms (the runner's clock) when the lease runs out unless renewed. */
  leaseEndsAt: number;
}

/** A handler's failure, or one found before the handler ran (vanished, unreadable...). */
export type FailureOutcome = Omit<Extract<HandlerOutcome, { ok: false }>, 'kind'> & { kind: string };

/** Every line about a file carries its path, attempt and the worker id. */
/** The metrics' labels of a file: its configured folder (bounded by the config), never its own. */
export interface FileLabels {
  folder: string;
  fileType: string;
}

export function fileLabels(claim: Claim, folder: RunnerFolder | undefined): FileLabels {
  return { folder: folder?.dir ?? '', fileType: claim.fileType };
}

export function claimLog(logger: Logger, claim: Claim, workerId: string): Logger {
  return logger.child({ path: claim.fileUrl, attempt: claim.attempt, workerId });
}
