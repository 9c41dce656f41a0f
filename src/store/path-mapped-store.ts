/**
 * A store seen through per-host path prefixes (path-map.ts): everything above it (watcher,
 * runner, after-actions, CLI) keeps working with this host's paths, and the store underneath
 * keeps the shared names. Every path crossing the interface is translated here and nowhere
 * else: local -> shared on the way in (discovery, claims, token writes, lookups), shared ->
 * local on the way out (claims, records, attempts, unfinished after-actions).
 *
 * The idempotency key is computed by the store from the shared name, so it is the same on
 * every host for one version of one file.
 */
import type { PathMap } from './path-map.js';
import type {
  Activity,
  ActivityQuery,
  AfterActionDone,
  AttemptRecord,
  CheckpointStore,
  Claim,
  ClaimOptions,
  ClaimRef,
  Completion,
  DiscoverResult,
  DiscoverOptions,
  DiscoveredFile,
  FailResult,
  Failure,
  FileRecord,
  ListQuery,
  PurgeQuery,
  TombstoneExpiryQuery,
  RequeueQuery,
  Status,
  StoreStats,
  Tombstone,
  UnfinishedAfterAction,
  WorkerInfo,
  WorkerRecord,
  WriteResult,
} from './types.js';

export class PathMappedStore implements CheckpointStore {
  readonly kind: CheckpointStore['kind'];
  takeAfterAction?: (item: UnfinishedAfterAction, workerId: string, now: number) => Promise<boolean>;

  constructor(
    readonly inner: CheckpointStore,
    private readonly paths: PathMap,
  ) {
    this.kind = inner.kind;
    const take = inner.takeAfterAction?.bind(inner);
    if (take) this.takeAfterAction = (item, workerId, now) => take({ ...item, fileUrl: this.shared(item.fileUrl) }, workerId, now);
  }

  private shared(p: string): string {
    return this.paths.toShared(p);
  }

  private local<T extends { fileUrl: string }>(x: T): T {
    return { ...x, fileUrl: this.paths.toLocal(x.fileUrl) };
  }

  private sharedRef<T extends { fileUrl: string }>(x: T): T {
    return { ...x, fileUrl: this.paths.toShared(x.fileUrl) };
  }

  private claimOptions(opts: ClaimOptions): ClaimOptions {
    const onExpired = opts.onExpired;
    return onExpired ? { ...opts, onExpired: (expired) => onExpired(expired.map((e) => this.local(e))) } : opts;
  }

  async discover(files: readonly DiscoveredFile[], now: number, opts?: DiscoverOptions): Promise<DiscoverResult> {
    const still = opts?.stillThere;
    const inner = still ? { ...opts, stillThere: (f: DiscoveredFile) => still(this.local(f)) } : opts;
    const res = await this.inner.discover(files.map((f) => this.sharedRef(f)), now, inner);
    return res.unfinished ? { ...res, unfinished: res.unfinished.map((u) => this.local(u)) } : res;
  }

  async claim(n: number, opts: ClaimOptions): Promise<Claim[]> {
    return (await this.inner.claim(n, this.claimOptions(opts))).map((c) => this.local(c));
  }

  async claimFile(fileUrl: string, opts: ClaimOptions): Promise<Claim | null> {
    const c = await this.inner.claimFile(this.shared(fileUrl), this.claimOptions(opts));
    return c && this.local(c);
  }

  async heartbeat(refs: readonly ClaimRef[], leaseMs: number, now: number): Promise<ClaimRef[]> {
    return (await this.inner.heartbeat(refs.map((r) => this.sharedRef(r)), leaseMs, now)).map((r) => this.local(r));
  }

  setHandlerPid(ref: ClaimRef, pid: number): Promise<WriteResult> {
    return this.inner.setHandlerPid(this.sharedRef(ref), pid);
  }

  complete(items: readonly Completion[]): Promise<WriteResult[]> {
    return this.inner.complete(items.map((c) => this.sharedRef(c)));
  }

  fail(item: Failure): Promise<FailResult> {
    return this.inner.fail(this.sharedRef(item));
  }

  release(refs: readonly ClaimRef[], now: number): Promise<WriteResult[]> {
    return this.inner.release(refs.map((r) => this.sharedRef(r)), now);
  }

  requeue(q: RequeueQuery): Promise<number> {
    const mapped: RequeueQuery = { ...q };
    if (q.files) mapped.files = q.files.map((f) => this.shared(f));
    if (q.movedBack) mapped.movedBack = new Map([...q.movedBack].map(([f, from]) => [this.shared(f), from]));
    return this.inner.requeue(mapped);
  }

  async tombstone(fileUrl: string): Promise<Tombstone | null> {
    const t = await this.inner.tombstone(this.shared(fileUrl));
    return t && this.local(t);
  }

  async revive(file: DiscoveredFile, q: { now: number; by?: string }): Promise<Tombstone | null> {
    const t = await this.inner.revive(this.sharedRef(file), q);
    return t && this.local(t);
  }

  recordAfterAction(item: AfterActionDone): Promise<void> {
    return this.inner.recordAfterAction(this.sharedRef(item));
  }

  async get(fileUrl: string): Promise<FileRecord | null> {
    const r = await this.inner.get(this.shared(fileUrl));
    return r && this.local(r);
  }

  /** Rows come in the order of their shared names; `after` is a local path of a row listed before. */
  async list(q: ListQuery): Promise<FileRecord[]> {
    const rows = await this.inner.list(q.after !== undefined ? { ...q, after: this.shared(q.after) } : q);
    return rows.map((r) => this.local(r));
  }

  async attempts(fileUrl: string): Promise<AttemptRecord[]> {
    return (await this.inner.attempts(this.shared(fileUrl))).map((a) => this.local(a));
  }

  counts(): Promise<Record<Status, number>> {
    return this.inner.counts();
  }

  stats(now: number): Promise<StoreStats> {
    return this.inner.stats(now);
  }

  /** Files come back as this host's paths; a backlog folder is mapped as a path of its own. */
  async activity(q: ActivityQuery): Promise<Activity> {
    const a = await this.inner.activity(q);
    return {
      stats: a.stats,
      workers: a.workers,
      windows: a.windows,
      backlog: a.backlog.map((g) => ({ ...g, folder: this.paths.toLocal(g.folder) })),
      inFlight: a.inFlight.map((f) => this.local(f)),
      failures: a.failures.map((f) => this.local(f)),
    };
  }

  purge(q: PurgeQuery): Promise<number> {
    return this.inner.purge(q);
  }

  expireTombstones(q: TombstoneExpiryQuery): Promise<number> {
    return this.inner.expireTombstones(q);
  }

  touchWorker(w: WorkerInfo, now: number): Promise<void> {
    return this.inner.touchWorker(w, now);
  }

  removeWorker(workerId: string): Promise<void> {
    return this.inner.removeWorker(workerId);
  }

  workers(): Promise<WorkerRecord[]> {
    return this.inner.workers();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** `store` seen through `paths`, or `store` itself when there is nothing to map. */
export function withPathMap(store: CheckpointStore, paths: PathMap): CheckpointStore {
  return paths.empty ? store : new PathMappedStore(store, paths);
}
