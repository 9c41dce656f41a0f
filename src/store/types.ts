/**
 * The store interface: everything above it (watcher, runner, CLI, metrics) talks to a
 * checkpoint store only through these types. SQLite is the embedded implementation; the
 * in-memory fallback and PostgreSQL implement the same contract and run the same test suite
 * (test/contract/).
 *
 * Times cross this interface as epoch milliseconds (`now` is always passed in, so tests move
 * the clock instead of sleeping). Stores persist them as ISO-8601 UTC text so that the
 * sqlite3 shell shows them readably.
 */

/** Every status a file can be in. Transitions are drawn in the README and enforced in SQL. */
export const STATUSES = ['pending', 'processing', 'completed', 'failed', 'dead'] as const;
export type Status = (typeof STATUSES)[number];

/** What to do when a completed (or dead) file shows up again with a different fingerprint. */
export type ChangePolicy = 'reprocess' | 'ignore';

/** A file that the watcher found complete and ready to be claimed. */
export interface DiscoveredFile {
  /** Absolute path; the primary key. */
  fileUrl: string;
  fileType: string;
  /** The file's mtime, epoch ms. */
  mtimeMs: number;
  size: number;
  /** `size:mtimeMs:dev:ino`; see fingerprintOf(). */
  fingerprint: string;
}

export interface DiscoverResult {
  /** Rows that did not exist before. */
  inserted: number;
  /** Completed/dead rows whose fingerprint changed and became a new pending version. */
  reversioned: number;
  /** Already known (same fingerprint, or any fingerprint under policy `ignore`). */
  unchanged: number;
  /** Skipped because a purge tombstone says this exact version was already handled. */
  tombstoned: number;
  /**
   * Files still lying where they were found although their outcome (completed/dead, same
   * fingerprint) planned an after-action that moves or deletes them: the worker died between
   * the commit and the after-action. Filled by stores that can tell (SQLite).
   */
  unfinished?: UnfinishedAfterAction[];
}

export interface UnfinishedAfterAction {
  fileUrl: string;
  status: 'completed' | 'dead';
  /** The planned action as recorded ("move:/srv/done", "delete"). */
  afterAction: string;
  fingerprint: string;
  /** The worker that recorded the outcome (it may still be busy moving the file). */
  processedBy: string | null;
  /**
   * When the row was last written (epoch ms), where the store knows: a worker that wrote it
   * before this machine booted is gone, whatever process has its pid now.
   */
  recordedAt?: number;
}

/** What a worker holds after a successful claim. Every later write must present `token`. */
export interface Claim {
  fileUrl: string;
  fileType: string;
  version: number;
  /** 1-based run counter for this version; never reused, so (file, version, attempt) is unique. */
  attempt: number;
  /** Failed attempts counted against the retry budget (reset by requeue). */
  retryCount: number;
  token: string;
  fingerprint: string;
  /** Epoch ms when the lease runs out unless extended. */
  leaseExpiresAt: number;
  /** Stable for one version of one file: a sink can de-duplicate on it. */
  idempotencyKey: string;
}

/** A claim whose lease ran out and was taken away from its worker inside a claim transaction. */
export interface ExpiredClaim {
  fileUrl: string;
  version: number;
  attempt: number;
  token: string;
  workerId: string | null;
  /** Process group of a command handler, when the worker recorded one (setHandlerPid). */
  handlerPid: number | null;
  /** What the row became: retried later, or dead when the retry budget is spent. */
  status: 'failed' | 'dead';
}

export interface ClaimOptions {
  workerId: string;
  leaseMs: number;
  now: number;
  /**
   * Called synchronously inside the claim transaction, before the expired claims become
   * claimable, so that the caller can make sure the orphaned handlers of a dead worker on this
   * host are gone before anyone runs the same file again.
   */
  onExpired?: (expired: readonly ExpiredClaim[]) => void;
  /** The after-action label recorded when an expired claim's file goes dead (spent budget). */
  deadAfterAction?: string;
  /**
   * An expired claim's route, by its file type: its retry policy and dead after-action label
   * replace the store's policy and `deadAfterAction` (undefined, or a field left out: those).
   */
  routeOf?: (fileType: string) => ExpiryRoute | undefined;
  /**
   * claim() only: hand out only files of these types (a route's feeds), or with `except`, only
   * files of none of them (the default route). Absent: any file. Expired leases are swept
   * whatever the filter says.
   */
  fileTypes?: FileTypeFilter;
}

/** What a route changes about an expired claim of its file type (see ClaimOptions.routeOf). */
export interface ExpiryRoute {
  retry?: RetryPolicy;
  deadAfterAction?: string;
}

/** Which file types a claim may take (see ClaimOptions.fileTypes). */
export interface FileTypeFilter {
  readonly types: readonly string[];
  /** True: every type except these. */
  readonly except?: boolean;
}

/** True when a file of `fileType` passes the filter (absent: every file does). */
export function fileTypeAllowed(filter: FileTypeFilter | undefined, fileType: string): boolean {
  return filter === undefined || filter.types.includes(fileType) !== (filter.except === true);
}

/** A claim token presented with a write. */
export interface ClaimRef {
  fileUrl: string;
  token: string;
}

export interface HandlerStats {
  totalRows: number;
  filteredRows: number;
  persistedRows: number;
  durationMs: number;
}

export interface Completion extends ClaimRef {
  stats: HandlerStats;
  now: number;
  /** What the after-action will be ("keep", "delete", "move:/dir/name"), recorded with the attempt. */
  afterAction?: string;
  /**
   * The fingerprint of the content the handler actually read, when the worker checked it (the
   * file may have been replaced between discovery and the run). Recorded on the row, so that
   * the next discovery of the same content is not taken for a new version.
   */
  fingerprint?: string;
}

export interface Failure extends ClaimRef {
  error: string;
  /** A permanent failure goes to `dead` at once, without retries. */
  permanent: boolean;
  now: number;
  durationMs: number;
  /** Attempt outcome to record, default 'failed' (e.g. 'vanished', 'timeout'). */
  reason?: string;
  /** The after-action that will follow if this failure makes the file dead (recorded then). */
  deadAfterAction?: string;
  /** The retry policy of the file's route; absent: the one the store was opened with. */
  retry?: RetryPolicy;
  /**
   * The file as the handler read it, when that differs from the claim's look (rewritten between
   * discovery and the run): recorded, so the content that failed is not seen as a new version
   * (as for a completion).
   */
  fingerprint?: string;
}

/**
 * The answer to a token-guarded write. `lost`: the token no longer holds the file (the claim
 * was taken over, or the file was requeued); nothing was changed.
 */
export type WriteResult = 'ok' | 'lost';
export type FailResult = 'failed' | 'dead' | 'lost';

/** A full row of file_checkpoints, as the CLI and tests see it. */
export interface FileRecord {
  fileUrl: string;
  fileType: string;
  fileTimestamp: string;
  status: Status;
  recordsTotal: number;
  recordsFiltered: number;
  recordsPersisted: number;
  processingTimeMs: number;
  errorMessage: string | null;
  retryCount: number;
  processedBy: string | null;
  startedAt: string | null;
  completedAt: string | null;
  createdAt: string;
  version: number;
  attempts: number;
  fingerprint: string;
  fileSize: number;
  claimToken: string | null;
  /** pending: when it became ready; failed: next attempt; processing: lease expiry. */
  dueAt: string | null;
  handlerPid: number | null;
  afterAction: string | null;
  updatedAt: string;
}

export interface AttemptRecord {
  fileUrl: string;
  version: number;
  attempt: number;
  workerId: string;
  startedAt: string;
  endedAt: string | null;
  /** completed, failed, dead, released, lease_expired, vanished, ... */
  outcome: string;
  errorMessage: string | null;
  durationMs: number | null;
  afterAction: string | null;
}

export interface ListQuery {
  status?: Status;
  fileType?: string;
  /** Only rows updated at or after this epoch ms. */
  since?: number;
  limit?: number;
  /** Paging: rows after this file_url (ordered by file_url). */
  after?: string;
}

export interface RequeueQuery {
  files?: readonly string[];
  /** Requeue every dead file (optionally of one type). */
  dead?: boolean;
  fileType?: string;
  now: number;
  /** Who asked, recorded with the requeue in the file's history (default "ckpt retry"). */
  by?: string;
  /**
   * Named files that were put back at their path from where an after-action had moved them:
   * file -> the place they were taken from, recorded with the requeue.
   */
  movedBack?: ReadonlyMap<string, string>;
}

/**
 * The history row a requeue writes (file_attempts, outcome "requeued"): not an attempt, so it
 * has no end time and no claim token. The outcome counters, the views and salvage look at ended
 * attempts only, and pass over it.
 */
export const REQUEUED = 'requeued';

/** What a purge leaves of a file: enough to keep the same file from being handled again. */
export interface Tombstone {
  fileUrl: string;
  fingerprint: string;
  version: number;
  /** The status the row had when it was purged. */
  status: string;
  purgedAt: string;
}

/** The after-action's result for one claim, recorded in that attempt's history row. */
export interface AfterActionDone extends ClaimRef {
  /** What applyAfterAction() reported ("moved to /srv/dead/a.1.csv", "failed: ..."). */
  done: string;
}

export interface PurgeQuery {
  olderThanMs: number;
  statuses: readonly ('completed' | 'dead')[];
  now: number;
  /**
   * At most this many rows in this call (in one short write transaction); absent: all of them.
   * The daemon's scheduled purge calls again until fewer come back (src/daemon/retention.ts).
   */
  limit?: number;
}

/** Tombstones whose purge is older than the cut-off; `limit` as in PurgeQuery. */
export interface TombstoneExpiryQuery {
  olderThanMs: number;
  now: number;
  limit?: number;
}

export interface RetryPolicy {
  /** Retries after the first attempt: 3 means at most 4 runs. */
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface StoreStats {
  counts: Record<Status, number>;
  /** ISO time since when the oldest waiting (pending) file has been ready, or null. */
  oldestPendingAt: string | null;
  /** Attempts that ended completed / in failure (failed, dead, lease_expired, ...) in the window. */
  completedLastMinute: number;
  completedLastHour: number;
  failedLastMinute: number;
  failedLastHour: number;
}

/** What `ckpt top` asks for on each refresh (one call, so a store answers it in one go). */
export interface ActivityQuery {
  now: number;
  /** Rate windows, each counted back from `now` (top asks for the last 5 s and the last minute). */
  windowsMs: readonly number[];
  /** At most this many rows in each list (backlog groups, in-flight files, failures). */
  limit: number;
}

/** What happened in one window: new files recorded, attempts that completed, attempts that failed. */
export interface WindowCounts {
  windowMs: number;
  /** Rows first recorded in the window (created_at): new files, not new versions of known ones. */
  discovered: number;
  completed: number;
  /** Ended attempts other than completed and released (as in StoreStats). */
  failed: number;
}

/** Files waiting in one folder (the file_url's directory) with one file type. */
export interface BacklogGroup {
  folder: string;
  fileType: string;
  pending: number;
  /** Failed files waiting for their next attempt. */
  retrying: number;
  /** ISO time since when the oldest pending file of the group has been ready, or null. */
  oldestPendingAt: string | null;
}

/** A file being handled now. */
export interface InFlightFile {
  fileUrl: string;
  fileType: string;
  workerId: string | null;
  attempt: number;
  startedAt: string | null;
  leaseExpiresAt: string | null;
}

/** An attempt that ended in failure (failed, dead, lease_expired, vanished, ...). */
export interface RecentFailure {
  fileUrl: string;
  version: number;
  attempt: number;
  workerId: string;
  endedAt: string;
  outcome: string;
  errorMessage: string | null;
}

export interface Activity {
  /** What stats() reports, read together with the rest (`ckpt top` shows it as status does). */
  stats: StoreStats;
  /** What workers() reports, likewise. */
  workers: WorkerRecord[];
  /** One entry per requested window, in the order asked. */
  windows: WindowCounts[];
  /** Largest backlog first (pending + retrying), then by folder and type. */
  backlog: BacklogGroup[];
  /** Longest running first (earliest start). */
  inFlight: InFlightFile[];
  /** Most recent first. */
  failures: RecentFailure[];
}

export interface WorkerInfo {
  workerId: string;
  host: string;
  pid: number;
  mode: 'normal' | 'degraded';
  /** Epoch ms the current mode began, or null. */
  modeSince: number | null;
  modeReason: string | null;
}

export interface WorkerRecord {
  workerId: string;
  host: string;
  pid: number;
  startedAt: string;
  heartbeatAt: string;
  mode: string;
  modeSince: string | null;
  modeReason: string | null;
}

export interface DiscoverOptions {
  /**
   * Asked for each file inside the write, on every try: false drops the file. The daemon's last
   * look at the disk (src/run/recheck-discovered.ts): a write that waited on a lock must not
   * record a file that was handled under newer content and moved meanwhile (soak seed
   * 562355558).
   */
  stillThere?: (f: DiscoveredFile) => boolean;
  /**
   * The change policy for this call, instead of the store's. The library's CheckpointManager
   * passes 'ignore' when its caller gave no version: a timestamp alone is not a new version.
   */
  onChange?: ChangePolicy;
}

export interface CheckpointStore {
  readonly kind: 'sqlite' | 'memory' | 'postgres';
  discover(files: readonly DiscoveredFile[], now: number, opts?: DiscoverOptions): Promise<DiscoverResult>;
  claim(n: number, opts: ClaimOptions): Promise<Claim[]>;
  /** Claim one named file if it is claimable now (pending, or failed and due). */
  claimFile(fileUrl: string, opts: ClaimOptions): Promise<Claim | null>;
  /** Extend leases; returns the refs that are no longer held (taken over or requeued). */
  heartbeat(refs: readonly ClaimRef[], leaseMs: number, now: number): Promise<ClaimRef[]>;
  setHandlerPid(ref: ClaimRef, pid: number): Promise<WriteResult>;
  /** Commits many completions in one transaction; one result per item, in order. */
  complete(items: readonly Completion[]): Promise<WriteResult[]>;
  fail(item: Failure): Promise<FailResult>;
  /** Give files back (shutdown) without counting an attempt against the retry budget. */
  release(refs: readonly ClaimRef[], now: number): Promise<WriteResult[]>;
  /** Operator action: dead/failed (or named) files back to pending with a fresh budget. */
  requeue(q: RequeueQuery): Promise<number>;
  get(fileUrl: string): Promise<FileRecord | null>;
  list(q: ListQuery): Promise<FileRecord[]>;
  attempts(fileUrl: string): Promise<AttemptRecord[]>;
  counts(): Promise<Record<Status, number>>;
  stats(now: number): Promise<StoreStats>;
  /**
   * What is moving right now, for `ckpt top`: everything one refresh shows (stats, workers,
   * rates, backlog, in-flight files, recent failures), read as one snapshot where the store can
   * (one read transaction). Read only.
   */
  activity(q: ActivityQuery): Promise<Activity>;
  /** Deletes completed/dead rows older than the cut-off, leaving tombstones; returns how many. */
  purge(q: PurgeQuery): Promise<number>;
  /**
   * Deletes tombstones left by purges older than the cut-off; returns how many. The same file
   * still lying at its path (or put back) afterwards is discovered as new and runs again.
   */
  expireTombstones(q: TombstoneExpiryQuery): Promise<number>;
  /** The tombstone a purge left for this path, or null. */
  tombstone(fileUrl: string): Promise<Tombstone | null>;
  /**
   * Operator action: lift the tombstone of a purged file that still lies at its path and make
   * it pending again as the next version (a new idempotency key: it was handled before). The
   * requeue is recorded in its history. Returns the tombstone lifted, or null when there was
   * none (nothing changed).
   */
  revive(file: DiscoveredFile, q: { now: number; by?: string }): Promise<Tombstone | null>;
  /**
   * Record where the after-action left the file, in the history row of the attempt that ended
   * with `token` (file_attempts.after_action, which held the plan until then). The row of the
   * file keeps the plan. Best effort: a store that cannot write now may drop it.
   */
  recordAfterAction(item: AfterActionDone): Promise<void>;
  /**
   * Take over an unfinished after-action: true for exactly one caller (compare-and-set on the
   * recorded label), who then runs it. Optional: stores without it never report `unfinished`.
   */
  takeAfterAction?(item: UnfinishedAfterAction, workerId: string, now: number): Promise<boolean>;
  /** Record that a ckpt process is alive (and in which mode), for `ckpt status`. */
  touchWorker(w: WorkerInfo, now: number): Promise<void>;
  removeWorker(workerId: string): Promise<void>;
  workers(): Promise<WorkerRecord[]>;
  close(): Promise<void>;
}
