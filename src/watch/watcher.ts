/**
 * FolderWatcher: finds files dropped into watched folders and hands each one on, once it is
 * completely written, to a sink (the daemon's store.discover). It never touches the database.
 *
 *   folder events  ─┐
 *   start-up scan  ─┼─> consider() ─> StabilityTracker ─(stable)─> ready queue ─> sink
 *   periodic rescan ┘        (one timer, bounded)                (micro-batched, one call at a time)
 *
 * Events and scans are only hints ("look at this path"): every decision is made on our own
 * lstat, so a missed event costs latency (until the next rescan), never a file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { isNetworkFileSystem, pollDecision } from '../mounts.js';
import type { DiscoveredFile } from '../store/types.js';
import { startEventSource, type EventSource, type KernelEvent, type WatchEventKind } from './events.js';
import { compileFilter, type FileFilter } from './filter.js';
import { fingerprintOf } from '../file-identity.js';
import { KernelReadiness, type KernelReadyMode } from './kernel-readiness.js';
import { judge, StabilityTracker, type TrackedEntry } from './readiness.js';
import { escapePath, lstat, scanTree, type ScanEntry } from './scan.js';

export interface WatchFolder {
  /** The folder to watch; made absolute with path.resolve. */
  dir: string;
  /** picomatch globs (see filter.ts); empty means every name. */
  include: readonly string[];
  exclude: readonly string[];
  fileType: string;
  /** true: always stat-poll; 'auto': poll on a network file system (nfs, cifs, sshfs...). */
  poll: boolean | 'auto';
  /** ".done": `x.csv` is ready only once `x.csv.done` exists beside it. */
  readyMarker: string | null;
  /** Watch sub-folders too (default true). */
  recursive?: boolean;
  /** 'stability': never ready by kernel events, only by the stability timer (default 'auto'). */
  readiness?: 'auto' | 'stability';
}

export interface FolderWatcherOptions {
  folders: readonly WatchFolder[];
  /** A file is ready when two stats this far apart show no change. */
  stableMs: number;
  /** Period of the full rescan that catches whatever events missed. */
  rescanMs: number;
  /** Files waiting for stability or for the sink, at most (default 100,000). */
  maxTracked?: number;
  /** Files per sink call (default 512). */
  batchSize?: number;
  /** Remembered handed-on fingerprints, so rescans do not re-send unchanged files (default 250,000). */
  maxHanded?: number;
  /** Stat-poll interval of a polled folder (default stableMs / 2, within 100..1000 ms). */
  pollIntervalMs?: number;
  /** How often each folder's root is checked for deletion or a remount (default min(1000, rescanMs)). */
  rootCheckMs?: number;
  logger: Logger;
  /** Receives ready files; one call at a time. If it throws, the files are offered again later. */
  sink: (files: DiscoveredFile[]) => Promise<void>;
  /** Monotonic clock in ms for stability deadlines (default performance.now). */
  now?: () => number;
  /** Decides `poll: 'auto'` (default isNetworkFileSystem from src/mounts.ts). */
  isNetworkFs?: (dir: string) => boolean;
}

export interface WatcherStats {
  /** Files waiting for their stable period. */
  tracked: number;
  /** Stable files waiting for their ready marker. */
  awaitingMarker: number;
  /** Ready files not yet accepted by the sink. */
  queued: number;
  /** Files the sink accepted (a file handed twice counts twice). */
  handed: number;
  /** Events dropped because the tracker was full (each one schedules a rescan). */
  dropped: number;
  /** Folder scans completed. */
  scans: number;
  sinkFailures: number;
  /** Distinct names skipped because they are not valid UTF-8. */
  invalidNames: number;
  /** Times a folder's watcher was re-created (deleted and recreated, remounted) or fell back to scans (ENOSPC). */
  restarts: number;
  /** Watched folders that do not exist right now (waited for). */
  missingFolders: number;
}

/** Stats in flight while a scan or a due-check runs; bounds the thread pool's queue. */
const STAT_BATCH = 256;
/** Progress line every this many entries during a scan. */
const SCAN_PROGRESS_EVERY = 10_000;
/**
 * Scan period of a folder that could not be watched (ENOSPC/EMFILE). An opendir scan of 50,000
 * entries took 227 ms here (scripts/bench/findings.md), so 5 s costs about 5% of a core.
 */
const FALLBACK_SCAN_MS = 5_000;
/** Sets that only exist to log something once are capped, so a hostile folder cannot grow them. */
const LOG_ONCE_CAP = 100_000;

interface FolderState {
  readonly index: number;
  readonly spec: WatchFolder;
  readonly root: string;
  /**
   * The root with symlinks resolved, which is what is watched: with followSymlinks off chokidar
   * reports nothing inside a root that is itself a symlink (measured). Events are mapped back
   * to `root`, so file URLs keep the configured path.
   */
  watchRoot: string;
  readonly recursive: boolean;
  readonly filter: FileFilter;
  source: EventSource | null;
  /** rootIdOf() the root when the watcher was created: a change means remount or re-creation. */
  rootId: string | null;
  gone: boolean;
  /** A periodic stat of the root is in flight. */
  rootCheck: boolean;
  poll: boolean;
  /**
   * 'kernel-events': files written after the watch began are ready on their close or rename
   * (kernel-readiness.ts); 'stability': the stability timer only (polled folders, and every
   * folder when the native part is not loaded).
   */
  readiness: 'kernel-events' | 'stability';
  /**
   * Some folder under this root could not be watched (inotify watches exhausted, ENOSPC, or
   * EMFILE): the whole folder is scanned every FALLBACK_SCAN_MS instead, until ckpt restarts.
   */
  fallbackTimer: NodeJS.Timeout | null;
  /** A start/stop of this folder's watcher in progress (the root check must not overlap it). */
  transition: Promise<void> | null;
  scan: Promise<void> | null;
  scanAgain: boolean;
  overflowTimer: NodeJS.Timeout | null;
}

type ConsiderResult = 'ok' | 'full';

/**
 * Identity of a folder: dev and inode, plus birth time because ext4 hands a folder deleted and
 * created again at once the SAME inode number (measured: 2146791 both times) and a watcher on
 * the old one hears nothing. Birth time is 0 where the file system does not record it.
 */
function rootIdOf(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeMs}`;
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

export class FolderWatcher {
  private readonly log: Logger;
  private readonly folders: FolderState[];
  private readonly stableMs: number;
  private readonly rescanMs: number;
  private readonly maxTracked: number;
  private readonly batchSize: number;
  private readonly maxHanded: number;
  private readonly pollIntervalMs: number;
  private readonly rootCheckMs: number;
  private readonly now: () => number;
  private readonly isNetworkFs: (dir: string) => boolean;
  private readonly tracker: StabilityTracker<number>;
  private readonly sink: (files: DiscoveredFile[]) => Promise<void>;

  /** Ready files not yet accepted by the sink, by path (a newer version replaces an older). */
  private readonly queue = new Map<string, DiscoveredFile>();
  /** Stable files whose marker is missing: path -> fingerprint when found stable. */
  private readonly awaitingMarker = new Map<string, string>();
  /** path -> fingerprint last accepted by the sink; LRU by insertion order. */
  private readonly handed = new Map<string, string>();
  private readonly badNames = new Set<string>();
  private readonly warnedPaths = new Set<string>();
  private spaceWaiters: Array<() => void> = [];
  /** Paths with an event being looked at: 'again' when another event came meanwhile. */
  private readonly inFlight = new Map<string, 'once' | 'again'>();

  private flushing: Promise<void> | null = null;
  private flushScheduled = false;
  private holdFlush = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private consecutiveSinkFailures = 0;
  private rescanTimer: NodeJS.Timeout | null = null;
  private rootTimer: NodeJS.Timeout | null = null;
  private started = false;
  private closed = false;
  private signalClosing: () => void = () => undefined;
  /** Resolves when close() begins: anything waiting on chokidar's `ready` stops waiting. */
  private readonly closing = new Promise<void>((resolve) => {
    this.signalClosing = resolve;
  });
  private readonly kernel = new KernelReadiness();
  private readonly counters = { handed: 0, dropped: 0, scans: 0, sinkFailures: 0, invalidNames: 0, restarts: 0 };

  constructor(opts: FolderWatcherOptions) {
    if (!(opts.stableMs >= 0)) throw new RangeError(`stableMs must be >= 0, got ${opts.stableMs}`);
    if (!(opts.rescanMs > 0)) throw new RangeError(`rescanMs must be > 0, got ${opts.rescanMs}`);
    this.log = opts.logger.child({ component: 'watch' });
    this.stableMs = opts.stableMs;
    this.rescanMs = opts.rescanMs;
    this.maxTracked = Math.max(1, opts.maxTracked ?? 100_000);
    this.batchSize = Math.max(1, opts.batchSize ?? 512);
    // Why remember handed fingerprints at all, when store.discover is idempotent: a rescan of a
    // folder holding 100k processed files would otherwise put all 100k through stability
    // (100k tracker slots, i.e. the whole default bound, and a second stat each) and then
    // through discover, every rescanMs. Measured: 230 bytes of heap an entry (a 74-character
    // path, a 36-character fingerprint, the Map slot), so 250k entries are 55 MB at worst,
    // and a folder of 100k handed files costs 23 MB to rescan without re-sending it.
    this.maxHanded = Math.max(0, opts.maxHanded ?? 250_000);
    // Polling costs a stat per file per interval (docs/stack-behaviour.md: interval 100 kept one core busy
    // with 20k idle files), so poll no faster than needed to see a file within stableMs.
    this.pollIntervalMs = opts.pollIntervalMs ?? Math.min(1000, Math.max(100, Math.round(opts.stableMs / 2)));
    this.rootCheckMs = opts.rootCheckMs ?? Math.min(1000, opts.rescanMs);
    this.now = opts.now ?? (() => performance.now());
    this.isNetworkFs = opts.isNetworkFs ?? isNetworkFileSystem;
    this.sink = opts.sink;
    this.folders = opts.folders.map((spec, index) => ({
      index,
      spec,
      root: path.resolve(spec.dir),
      watchRoot: path.resolve(spec.dir),
      recursive: spec.recursive ?? true,
      filter: compileFilter(spec),
      source: null,
      rootId: null,
      gone: false,
      rootCheck: false,
      poll: false,
      readiness: 'stability',
      fallbackTimer: null,
      transition: null,
      scan: null,
      scanAgain: false,
      overflowTimer: null,
    }));
    this.tracker = new StabilityTracker<number>({
      stableMs: this.stableMs,
      capacity: this.maxTracked,
      now: this.now,
      onDue: () => this.checkDue(),
      onError: (err) => this.log.error({ err }, 'stability check failed; continuing'),
    });
  }

  get stats(): WatcherStats {
    return {
      tracked: this.tracker.size,
      awaitingMarker: this.awaitingMarker.size,
      queued: this.queue.size,
      ...this.counters,
      missingFolders: this.folders.filter((f) => f.gone).length,
    };
  }

  /**
   * Starts every folder's watcher, then scans each folder once. Resolves when the start-up
   * scans are done: every file present is then tracked (or already handed to the sink). A
   * folder that does not exist yet is waited for, not an error.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('FolderWatcher.start() called twice');
    this.started = true;
    await Promise.all(this.folders.map((f) => this.startFolder(f, 'start')));
    if (this.closed) return;
    this.rescanTimer = setInterval(() => this.rescan(false), this.rescanMs);
    this.rootTimer = setInterval(() => this.checkRoots(), this.rootCheckMs);
  }

  /**
   * Scan every present folder again (also retries the sink if files are waiting). A folder
   * being scanned right now is scanned once more after it, so that everything present at this
   * call is seen; the periodic timer (`explicit` false) just skips it instead.
   */
  rescan(explicit = true): void {
    if (this.closed) return;
    for (const f of this.folders) {
      if (f.gone || f.transition !== null || (!explicit && f.scan !== null)) continue;
      void this.scanFolder(f, 'periodic');
    }
    if (this.queue.size > 0) this.kickFlush();
  }

  /**
   * Stops watching. Waits for a sink call in flight (so that the store can be closed after);
   * files still queued are not handed: the next start-up scan finds them again.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.signalClosing();
    if (this.rescanTimer !== null) clearInterval(this.rescanTimer);
    if (this.rootTimer !== null) clearInterval(this.rootTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.tracker.close();
    this.releaseSpace(true);
    await Promise.allSettled(
      this.folders.map(async (f) => {
        if (f.overflowTimer !== null) clearTimeout(f.overflowTimer);
        if (f.fallbackTimer !== null) clearInterval(f.fallbackTimer);
        await this.stopSource(f);
        await f.transition?.catch(() => undefined);
        await this.stopSource(f); // one a transition may have started before it saw `closed`
        await f.scan?.catch(() => undefined);
      }),
    );
    await this.flushing;
  }

  // ---------------------------------------------------------------------------------------
  // Folder lifecycle: start, root gone, root back.

  private startFolder(f: FolderState, reason: 'start' | 'recreated' | 'remounted'): Promise<void> {
    const run = (async () => {
      let st: fs.Stats;
      try {
        st = await fs.promises.stat(f.root);
        if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
        f.watchRoot = await fs.promises.realpath(f.root);
      } catch (err) {
        f.gone = true;
        this.log.warn({ folder: f.root, err }, 'watched folder is missing; watching for it to appear');
        return;
      }
      if (this.closed) return;
      f.gone = false;
      f.rootId = rootIdOf(st);
      f.poll = this.decidePoll(f);
      if (reason !== 'start') this.counters.restarts++;
      const source = startEventSource({
        root: f.watchRoot,
        recursive: f.recursive,
        poll: f.poll,
        pollIntervalMs: this.pollIntervalMs,
        ignored: (p, stats) => this.ignoredByWatcher(f, this.fromWatchRoot(f, p), stats),
        onEvent: (kind, p, st) => this.onEvent(f, source, kind, this.fromWatchRoot(f, p), st),
        onError: (err) => this.onWatcherError(f, source, err),
        onOverflow: (events) => this.onOverflow(f, source, events),
        ...(f.spec.readiness === 'stability' ? {} : { onKernel: (kind: KernelEvent, p: string) => this.onKernel(f, source, kind, this.fromWatchRoot(f, p)) }),
      });
      f.source = source;
      f.readiness = source.kernelEvents ? 'kernel-events' : 'stability';
      await Promise.race([source.ready, this.closing]);
      if (this.closed || f.source !== source) return;
      this.log.info({ folder: f.root, poll: f.poll, readiness: f.readiness, reason }, 'watching folder');
      await this.scanFolder(f, reason);
    })();
    f.transition = run;
    return run
      .catch(async (err: unknown) => {
        this.log.error({ folder: f.root, err }, 'could not start watching folder; retrying at the next root check');
        await this.stopSource(f);
        f.gone = true;
      })
      .finally(() => {
        if (f.transition === run) f.transition = null;
      });
  }

  private fromWatchRoot(f: FolderState, p: string): string {
    if (f.watchRoot === f.root) return p;
    if (p === f.watchRoot) return f.root;
    return p.startsWith(`${f.watchRoot}/`) ? f.root + p.slice(f.watchRoot.length) : p;
  }

  private decidePoll(f: FolderState): boolean {
    const d = pollDecision(f.spec.poll, f.root, this.isNetworkFs);
    if ('poll' in d) return d.poll;
    // Unknown: inotify, as for a local folder.
    this.log.warn({ folder: f.root, err: d.unknown }, 'could not tell whether the folder is on a network file system; using inotify');
    return false;
  }

  private async stopSource(f: FolderState): Promise<void> {
    const source = f.source;
    f.source = null;
    if (source === null) return;
    try {
      await source.close();
    } catch (err) {
      this.log.warn({ folder: f.root, err }, 'closing the folder watcher failed');
    }
  }

  /**
   * The root was deleted or unmounted. A watch on a deleted folder goes silent for good (docs/stack-behaviour.md,
   * for chokidar and for inotify alike), so it is dropped and the root check re-creates it.
   */
  private rootGone(f: FolderState, why: string): void {
    if (f.gone || this.closed) return;
    f.gone = true;
    this.log.warn({ folder: f.root, why }, 'watched folder went away; watching for it to come back');
    // Files of the old folder still waiting for stability would only vanish one by one.
    const prefix = `${f.root}/`;
    const forgotten = this.tracker.forgetUnder(prefix);
    for (const p of this.awaitingMarker.keys()) if (p.startsWith(prefix)) this.awaitingMarker.delete(p);
    if (forgotten > 0) this.releaseSpace();
    const stop = this.stopSource(f);
    f.transition = stop;
    void stop.finally(() => {
      if (f.transition === stop) f.transition = null;
    });
  }

  /** Periodic: a missing root, a root that came back, or a root that is now another folder. */
  private checkRoots(): void {
    for (const f of this.folders) {
      // Asynchronous, one at a time per folder: a stat on a hung NFS server can take minutes,
      // and must neither block the event loop nor pile up.
      if (f.transition !== null || f.rootCheck || this.closed) continue;
      f.rootCheck = true;
      fs.stat(f.root, (err, st) => {
        f.rootCheck = false;
        try {
          this.afterRootStat(f, err === null && st.isDirectory() ? rootIdOf(st) : null);
        } catch (e) {
          this.log.error({ folder: f.root, err: e }, 'checking the watched folder failed; continuing');
        }
      });
    }
  }

  private afterRootStat(f: FolderState, id: string | null): void {
    if (f.transition !== null || this.closed) return;
    if (f.gone) {
      if (id !== null) {
        this.log.info({ folder: f.root }, 'watched folder is back');
        void this.startFolder(f, 'recreated');
      }
    } else if (id === null) {
      this.rootGone(f, 'missing at periodic check');
    } else if (id !== f.rootId) {
      // Deleted and recreated between two checks, or a file system mounted over it: the old
      // watcher watches an inode nobody writes to any more.
      this.rootGone(f, 'replaced (remounted or recreated)');
      const stop = f.transition;
      const restart = (async () => {
        await stop;
        await this.startFolder(f, 'remounted');
      })();
      f.transition = restart;
      void restart.finally(() => {
        if (f.transition === restart) f.transition = null;
      });
    }
  }

  // ---------------------------------------------------------------------------------------
  // Events.

  private ignoredByWatcher(f: FolderState, p: string, stats?: fs.Stats): boolean {
    try {
      if (p === f.root || !p.startsWith(`${f.root}/`)) return false;
      const rel = p.slice(f.root.length + 1);
      if (f.filter.isPruned(rel)) return true;
      if (stats === undefined || stats.isDirectory()) return false;
      // Symlinks, FIFOs, sockets, devices, and files that are neither data nor markers: not
      // worth an inotify watch each (they are the scarce resource, docs/stack-behaviour.md).
      if (!stats.isFile()) return true;
      return !f.filter.isDataFile(rel) && f.filter.markerTarget(rel) === null;
    } catch {
      return false;
    }
  }

  private onEvent(f: FolderState, source: EventSource, kind: WatchEventKind, p: string, st?: fs.Stats | null): void {
    if (this.closed || f.source !== source) return;
    try {
      switch (kind) {
        case 'add':
        case 'change':
        case 'hint':
        case 'unlink':
          // write-then-rename arrives as `add` of the final name, a rename over an existing
          // name as `change` (docs/stack-behaviour.md): both mean "look at this file again".
          // `unlink` is checked too, not believed: with 20,000 files chokidar reported files
          // that were still there as unlinked (its folder re-reads overlap), and forgetting them
          // had 64 of 20,030 files handed twice. Our lstat's ENOENT forgets a file for real.
          this.considerCoalesced(f, p, kind, st);
          break;
        case 'unlinkDir':
          if (p === f.root) {
            this.rootGone(f, 'unlinkDir');
            // It may already be back (a quick rm -rf and mkdir): check now, not in a second.
            setImmediate(() => this.checkRoots());
          }
          break;
        case 'addDir':
          break;
      }
    } catch (err) {
      this.log.error({ path: p, err, event: kind }, 'handling a file event failed; continuing');
    }
  }

  /** A kernel event (native inotify): a file closed after writing or renamed in may be ready now. */
  private onKernel(f: FolderState, source: EventSource, kind: KernelEvent, p: string): void {
    if (this.closed || f.source !== source) return;
    try {
      const mode = this.kernel.event(kind, p);
      if (mode !== null) this.readyNow(f, p, mode);
    } catch (err) {
      this.log.error({ path: p, err, event: kind }, 'handling a file event failed; continuing');
    }
  }

  /**
   * Ready by a kernel event: no stability wait. The lstat is in line (kernel events come from
   * local folders only); its fingerprint is the version handed on. A folder with a ready marker
   * still waits for the marker.
   */
  private readyNow(f: FolderState, p: string, mode: KernelReadyMode): void {
    if (!p.startsWith(`${f.root}/`)) return;
    const rel = p.slice(f.root.length + 1);
    if (f.filter.markerTarget(rel) !== null) {
      this.considerCoalesced(f, p, 'hint');
      return;
    }
    if (!f.filter.isDataFile(rel)) return;
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) {
      this.forgetGone(p);
      return;
    }
    if (!this.isRegularFile(p, st)) return;
    const fp = fingerprintOf(st);
    if (this.isHanded(p, fp)) return;
    if (this.tracker.forget(p)) this.releaseSpace();
    const marker = f.spec.readyMarker;
    if (marker !== null && marker !== '' && !fs.existsSync(p + marker)) {
      this.awaitingMarker.set(p, fp);
      this.log.debug({ path: p, readiness: mode, marker: p + marker }, 'file is complete; waiting for its ready marker');
      return;
    }
    this.awaitingMarker.delete(p);
    this.log.debug({ path: p, readiness: mode }, 'file ready');
    this.enqueueReady(f, p, st);
  }

  private onWatcherError(f: FolderState, source: EventSource, err: NodeJS.ErrnoException): void {
    if (this.closed || f.source !== source) return;
    if (err?.code === 'ENOSPC' || err?.code === 'EMFILE') {
      // One watch per folder now, so this takes a tree of ~max_user_watches folders or another
      // process holding the watches. Files there are still found, by scans: say it once.
      if (f.fallbackTimer !== null) {
        this.log.debug({ folder: f.root, dir: err.path, err }, 'another folder could not be watched; scanned instead');
        return;
      }
      const everyMs = Math.min(this.rescanMs, FALLBACK_SCAN_MS);
      this.log.error(
        { folder: f.root, dir: err.path, err, scanEveryMs: everyMs },
        (err.code === 'ENOSPC'
          ? 'inotify watches exhausted (ENOSPC): raise fs.inotify.max_user_watches ' +
            '(e.g. `sysctl fs.inotify.max_user_watches=524288`, and in /etc/sysctl.d/ to keep it)'
          : // From inotify_init1 this is the per-user limit on inotify instances (128 here; each
            // process that watches anything holds one), more often than the file descriptor limit.
            'no inotify instance or file descriptor left (EMFILE): raise fs.inotify.max_user_instances ' +
            '(e.g. `sysctl fs.inotify.max_user_instances=1024`) or the open file limit (LimitNOFILE= in the systemd unit)') +
          '; this folder is scanned periodically instead until ckpt restarts',
      );
      this.counters.restarts++;
      f.fallbackTimer = setInterval(() => {
        if (!this.closed && !f.gone && f.scan === null) void this.scanFolder(f, 'fallback');
      }, everyMs);
      return;
    }
    this.log.error({ folder: f.root, dir: err?.path, err }, 'folder watcher error; continuing (rescans still run)');
  }

  /** The inotify queue may have overflowed: rescan once the burst is over (after stableMs). */
  private onOverflow(f: FolderState, source: EventSource, events: number): void {
    if (this.closed || f.source !== source) return;
    if (f.scan !== null) {
      f.scanAgain = true;
      return;
    }
    if (f.overflowTimer !== null) return;
    this.log.info({ folder: f.root, events }, 'a burst of file events may have overflowed the inotify queue: rescanning the folder');
    f.overflowTimer = setTimeout(() => {
      f.overflowTimer = null;
      if (!this.closed && !f.gone) void this.scanFolder(f, 'overflow');
    }, this.stableMs);
  }

  private dropped(f: FolderState, p: string): void {
    this.counters.dropped++;
    if (f.overflowTimer !== null || f.scan !== null) {
      // A rescan is already coming (or running and will be repeated): it will find the file.
      if (f.scan !== null) f.scanAgain = true;
      return;
    }
    this.log.warn(
      { folder: f.root, path: p, maxTracked: this.maxTracked },
      'too many files waiting for stability: dropping events and rescanning the folder (nothing is lost)',
    );
    f.overflowTimer = setTimeout(() => {
      f.overflowTimer = null;
      if (!this.closed && !f.gone) void this.scanFolder(f, 'overflow');
    }, this.stableMs);
  }

  /**
   * At most one look at a path in flight: a file written in 64 KB chunks raises an event per
   * write, and one more look after the current one sees them all. `st`: the lstat the event
   * source just took (the first look uses it instead of taking another).
   */
  private considerCoalesced(f: FolderState, p: string, kind: WatchEventKind, st?: fs.Stats | null): void {
    const state = this.inFlight.get(p);
    if (state !== undefined) {
      this.inFlight.set(p, 'again');
      return;
    }
    this.inFlight.set(p, 'once');
    const run = (known?: fs.Stats | null): void => {
      this.consider(f, p, known).then(
        (r) => {
          if (r === 'full') this.dropped(f, p);
          if (this.inFlight.get(p) === 'again' && !this.closed) {
            this.inFlight.set(p, 'once');
            run();
          } else {
            this.inFlight.delete(p);
          }
        },
        (err: unknown) => {
          this.inFlight.delete(p);
          this.log.error({ path: p, err, event: kind }, 'handling a file event failed; continuing');
        },
      );
    };
    run(st);
  }

  // ---------------------------------------------------------------------------------------
  // One path: is it a data file, and should it be tracked?

  /**
   * Look at `p` (an event or a scan found it). 'full' means the tracker had no room: the
   * caller drops it (an event) or waits for room (a scan).
   */
  private async consider(f: FolderState, p: string, known?: fs.Stats | null): Promise<ConsiderResult> {
    if (!p.startsWith(`${f.root}/`)) return 'ok';
    if (known === null) {
      this.forgetGone(p); // the event source's lstat found nothing there
      return 'ok';
    }
    const rel = p.slice(f.root.length + 1);
    const target = f.filter.markerTarget(rel);
    if (target !== null) return this.onMarker(f, `${f.root}/${target}`);
    if (!f.filter.isDataFile(rel)) return 'ok';
    const st = known ?? (await this.lstatOrNull(f, p));
    if (st === null || !this.isRegularFile(p, st)) return 'ok';
    const fp = fingerprintOf(st);
    if (this.isHanded(p, fp)) return 'ok';
    if (this.queue.get(p)?.fingerprint === fp) return 'ok';
    // Stable and waiting for its marker, unchanged: nothing to do until the marker appears.
    if (this.awaitingMarker.get(p) === fp) return 'ok';
    this.awaitingMarker.delete(p);
    const r = this.tracker.observe(p, st, f.index, this.queue.size);
    return r === 'full' ? 'full' : 'ok';
  }

  /** A marker appeared (or a scan saw one): its data file may be ready now. */
  private async onMarker(f: FolderState, dataPath: string): Promise<ConsiderResult> {
    const fp = this.awaitingMarker.get(dataPath);
    if (fp === undefined) {
      // Not known to be stable yet: track it (if already tracked, its check will see the marker).
      if (this.tracker.has(dataPath)) return 'ok';
      const st = await this.lstatOrNull(f, dataPath);
      if (st === null || !this.isRegularFile(dataPath, st)) return 'ok';
      const dfp = fingerprintOf(st);
      if (this.isHanded(dataPath, dfp) || this.queue.get(dataPath)?.fingerprint === dfp) return 'ok';
      return this.tracker.observe(dataPath, st, f.index, this.queue.size) === 'full' ? 'full' : 'ok';
    }
    const st = await this.lstatOrNull(f, dataPath);
    if (st === null || !st.isFile()) {
      this.awaitingMarker.delete(dataPath);
      return 'ok';
    }
    if (this.awaitingMarker.get(dataPath) !== fp) return 'ok'; // changed meanwhile
    this.awaitingMarker.delete(dataPath);
    if (fingerprintOf(st) === fp) {
      // Found stable before, unchanged since, and now marked: ready without another wait.
      this.enqueueReady(f, dataPath, st);
      return 'ok';
    }
    return this.tracker.observe(dataPath, st, f.index, this.queue.size) === 'full' ? 'full' : 'ok';
  }

  private async lstatOrNull(f: FolderState, p: string): Promise<fs.Stats | null> {
    try {
      return await this.lstatIn(f, p);
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) {
        this.forgetGone(p);
        return null;
      }
      this.warnOnce(p, err, 'cannot stat file; skipped');
      return null;
    }
  }

  /** `p` is gone (lstat said ENOENT): forget everything about it. */
  private forgetGone(p: string): void {
    if (this.tracker.forget(p)) {
      this.log.debug({ path: p }, 'file vanished before it was stable; dropped');
      this.releaseSpace();
    }
    this.awaitingMarker.delete(p);
    this.handed.delete(p);
  }

  private isRegularFile(p: string, st: fs.Stats): boolean {
    if (st.isFile()) return true;
    if (st.isSymbolicLink()) {
      this.log.debug({ path: p }, 'symlink in a watched folder is not a data file; skipped');
    } else if (!st.isDirectory()) {
      // Never opened: opening a FIFO for reading blocks until a writer comes.
      this.log.debug({ path: p }, 'not a regular file (FIFO, socket or device); skipped');
    }
    if (this.tracker.forget(p)) this.releaseSpace();
    return false;
  }

  private isHanded(p: string, fp: string): boolean {
    const old = this.handed.get(p);
    if (old !== fp) return false;
    // Refresh its LRU position: files still present stay remembered, deleted ones age out.
    this.handed.delete(p);
    this.handed.set(p, fp);
    return true;
  }

  private warnOnce(p: string, err: unknown, msg: string): void {
    if (this.warnedPaths.has(p)) return;
    if (this.warnedPaths.size < LOG_ONCE_CAP) this.warnedPaths.add(p);
    this.log.warn({ path: p, err }, msg);
  }

  // ---------------------------------------------------------------------------------------
  // Stability checks: called by the tracker's one timer when the earliest deadline passed.

  private async checkDue(): Promise<void> {
    while (!this.closed) {
      const due = this.tracker.due(STAT_BATCH);
      if (due.length === 0) return;
      // Files found ready by this round go to the sink together, not one call per stat reply.
      this.holdFlush = true;
      await Promise.all(
        due.map(([p, e]) =>
          this.checkOne(p, e).catch((err: unknown) => {
            this.log.error({ path: p, err }, 'stability check failed; dropped until the next event or rescan');
          }),
        ),
      );
      // Every due entry must leave the head, or the loop would spin on it.
      for (const [p, e] of due) this.tracker.forget(p, e);
      this.holdFlush = false;
      if (this.queue.size > 0) this.kickFlush();
      this.releaseSpace();
    }
  }

  private async checkOne(p: string, e: TrackedEntry<number>): Promise<void> {
    const f = this.folders[e.meta];
    if (f === undefined) return;
    let st: fs.Stats;
    try {
      st = await this.lstatIn(f, p);
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
      if (this.tracker.isCurrent(p, e)) this.forgetGone(p);
      return;
    }
    if (this.closed || !this.tracker.isCurrent(p, e)) return;
    if (!st.isFile()) return;
    const marker = f.spec.readyMarker;
    const markerPresent = marker !== null && marker !== '' && (await this.exists(p + marker));
    if (this.closed || !this.tracker.isCurrent(p, e)) return;
    const verdict = judge({
      prev: e.stat,
      prevAt: e.at,
      cur: st,
      curAt: this.now(),
      stableMs: this.stableMs,
      markerRequired: marker !== null && marker !== '',
      markerPresent,
    });
    // Stable by its stats, but the kernel saw writes and no close since: the writer only paused.
    if ((verdict === 'ready' || verdict === 'awaiting-marker') && f.readiness === 'kernel-events' && this.kernel.writing(p)) {
      this.log.debug({ path: p }, 'file unchanged for stableMs but still open for writing; waiting for its close');
      this.tracker.rearm(p, e, st);
      return;
    }
    switch (verdict) {
      case 'changed':
      case 'too-soon': // only with a clock that stepped back: start the period over
        this.tracker.rearm(p, e, st);
        return;
      case 'awaiting-marker': {
        this.tracker.forget(p, e);
        if (this.awaitingMarker.size >= this.maxTracked) {
          // Bounded like the tracker: the oldest waiter is forgotten; its marker's event (or
          // the rescan that sees the marker) tracks it again.
          const oldest = this.awaitingMarker.keys().next();
          if (oldest.done !== true) this.awaitingMarker.delete(oldest.value);
        }
        const fp = fingerprintOf(st);
        this.awaitingMarker.set(p, fp);
        this.log.debug({ path: p, marker: p + marker }, 'file is stable; waiting for its ready marker');
        // The marker may have appeared between our look and now, and its event found the file
        // still tracked: look once more so that it is not left waiting for a rescan.
        if (await this.exists(p + marker)) await this.onMarker(f, p);
        return;
      }
      case 'ready':
        this.tracker.forget(p, e);
        this.log.debug({ path: p, readiness: 'stable' }, 'file ready');
        this.enqueueReady(f, p, st);
        return;
    }
  }

  /**
   * lstat in line for a folder on a local file system, through the thread pool for a polled
   * (network) one. One lstat at a time (events, a due-check at a steady trickle of files) cost
   * 43-60 us of CPU through the thread pool here against 6-10 us in line (20,000 files, 2 cores,
   * loaded): the hops were 30% of the daemon's CPU in the producer scenario. A hung NFS server
   * would block the event loop in lstatSync, hence not there (scan.ts lstat says more).
   */
  private lstatIn(f: FolderState, p: string): Promise<fs.Stats> {
    if (f.poll) return lstat(p);
    try {
      return Promise.resolve(fs.lstatSync(p));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async exists(p: string): Promise<boolean> {
    try {
      await lstat(p);
      return true;
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Hand-off to the sink: micro-batched, one call at a time, nothing lost when it throws.

  private enqueueReady(f: FolderState, p: string, st: fs.Stats): void {
    if (this.closed) return;
    const fp = fingerprintOf(st);
    if (this.handed.get(p) === fp) return;
    this.queue.delete(p);
    this.queue.set(p, {
      fileUrl: p,
      fileType: f.spec.fileType,
      mtimeMs: Math.trunc(st.mtimeMs),
      size: st.size,
      fingerprint: fp,
    });
    this.kickFlush();
  }

  /**
   * Flush at once when a batch is full, else on the next turn of the event loop, so that the
   * files found ready by one round of checks go out together without waiting on a timer.
   */
  private kickFlush(): void {
    if (this.closed || this.flushing !== null || this.retryTimer !== null) return;
    if (this.holdFlush && this.queue.size < this.batchSize) return; // checkDue kicks when its round ends
    if (this.queue.size >= this.batchSize) {
      this.flushing = this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.closed && this.flushing === null && this.retryTimer === null && this.queue.size > 0) {
        this.flushing = this.flush();
      }
    });
  }

  private async flush(): Promise<void> {
    try {
      while (!this.closed && this.queue.size > 0) {
        const batch: DiscoveredFile[] = [];
        for (const file of this.queue.values()) {
          batch.push(file);
          if (batch.length >= this.batchSize) break;
        }
        try {
          await this.sink(batch);
        } catch (err) {
          this.counters.sinkFailures++;
          this.consecutiveSinkFailures++;
          // Back off 250 ms, 500 ms, ... up to rescanMs (and 30 s): the sink is the store, which
          // throws when the database is busy or broken; hammering it helps neither.
          const delay = Math.min(250 * 2 ** Math.min(this.consecutiveSinkFailures - 1, 16), this.rescanMs, 30_000);
          this.log.error(
            { err, path: batch[0]?.fileUrl, files: batch.length, queued: this.queue.size, failures: this.consecutiveSinkFailures, retryInMs: delay },
            'handing files to the store failed; keeping them to retry',
          );
          if (!this.closed) {
            this.retryTimer = setTimeout(() => {
              this.retryTimer = null;
              this.kickFlush();
            }, delay);
          }
          return;
        }
        this.consecutiveSinkFailures = 0;
        for (const file of batch) {
          if (this.queue.get(file.fileUrl) === file) this.queue.delete(file.fileUrl);
          this.rememberHanded(file.fileUrl, file.fingerprint);
        }
        this.counters.handed += batch.length;
        this.releaseSpace();
      }
    } finally {
      this.flushing = null;
    }
  }

  private rememberHanded(p: string, fp: string): void {
    if (this.maxHanded === 0) return;
    this.handed.delete(p);
    this.handed.set(p, fp);
    if (this.handed.size > this.maxHanded) {
      const oldest = this.handed.keys().next();
      if (oldest.done !== true) this.handed.delete(oldest.value);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Bounded buffer: scans wait for room; events are dropped (and a rescan scheduled).

  private hasRoom(): boolean {
    return this.tracker.size + this.queue.size < this.maxTracked;
  }

  private waitForRoom(): Promise<void> {
    if (this.closed || this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  private releaseSpace(all = false): void {
    if (this.spaceWaiters.length === 0 || (!all && !this.hasRoom())) return;
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of waiters) w();
  }

  // ---------------------------------------------------------------------------------------
  // Scans: start-up, periodic, after an overflow, after the folder came back.

  private scanFolder(f: FolderState, reason: string): Promise<void> {
    if (f.scan !== null) {
      f.scanAgain = true;
      return f.scan;
    }
    const run = (async () => {
      do {
        f.scanAgain = false;
        await this.scanOnce(f, reason);
        reason = 'repeat';
      } while (f.scanAgain && !this.closed && !f.gone);
    })();
    f.scan = run;
    return run
      .catch((err: unknown) => this.log.error({ folder: f.root, err }, 'folder scan failed; the next rescan retries'))
      .finally(() => {
        if (f.scan === run) f.scan = null;
      });
  }

  private async scanOnce(f: FolderState, reason: string): Promise<void> {
    const started = this.now();
    const loud = reason !== 'periodic' && reason !== 'repeat';
    let seen = 0;
    let nextProgress = SCAN_PROGRESS_EVERY;
    const entries = scanTree({
      root: f.root,
      recursive: f.recursive,
      batchSize: STAT_BATCH,
      isPruned: (rel) => f.filter.isPruned(rel),
      onInvalidName: (raw) => this.invalidName(f, raw),
      onDirError: (dir, err) => {
        if (err.code !== 'ENOENT') this.warnOnce(dir, err, 'cannot read a folder inside a watched folder; skipped');
      },
      aborted: () => this.closed || f.gone,
    });
    try {
      for await (const batch of entries) {
        const results = await Promise.all(batch.map((e) => this.considerScanned(f, e)));
        for (let i = 0; i < batch.length; i++) {
          // No room: wait until stability checks or the sink free some, then retry this file.
          while (results[i] === 'full' && !this.closed && !f.gone) {
            await this.waitForRoom();
            results[i] = await this.considerScanned(f, batch[i] as ScanEntry);
          }
        }
        seen += batch.length;
        if (seen >= nextProgress) {
          nextProgress += SCAN_PROGRESS_EVERY;
          this.log.info(
            { folder: f.root, reason, entries: seen, tracked: this.tracker.size, elapsedMs: Math.round(this.now() - started) },
            'scanning folder',
          );
        }
      }
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) {
        this.rootGone(f, 'missing at scan');
        return;
      }
      throw err;
    }
    if (this.closed) return;
    this.counters.scans++;
    const fields = { folder: f.root, reason, entries: seen, tracked: this.tracker.size, elapsedMs: Math.round(this.now() - started) };
    if (loud) this.log.info(fields, 'folder scan finished');
    else this.log.debug(fields, 'folder scan finished');
  }

  private considerScanned(f: FolderState, e: ScanEntry): Promise<ConsiderResult> | ConsiderResult {
    if (e.kind === 'file') {
      return this.consider(f, e.path).catch((err: unknown) => {
        this.log.error({ path: e.path, err }, 'looking at a scanned file failed; continuing');
        return 'ok' as const;
      });
    }
    if (f.filter.isDataFile(e.rel)) {
      this.log.debug(
        { path: e.path },
        e.kind === 'symlink'
          ? 'symlink in a watched folder is not a data file; skipped'
          : 'not a regular file (FIFO, socket or device); skipped',
      );
    }
    return 'ok';
  }

  /** One error per bad name for the life of the watcher (rescans see it again every time). */
  private invalidName(f: FolderState, raw: Buffer): void {
    const shown = escapePath(raw);
    if (this.badNames.has(shown)) return;
    if (this.badNames.size < LOG_ONCE_CAP) this.badNames.add(shown);
    this.counters.invalidNames++;
    this.log.error(
      { folder: f.root, path: shown },
      'file name is not valid UTF-8: skipped (rename it to a UTF-8 name to have it processed)',
    );
  }
}
