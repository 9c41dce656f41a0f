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
 *
 * This class assembles the parts and owns the timers of the whole watcher:
 *   folder-roots.ts       each root's life: start, gone, back, replaced, stop
 *   event-dispatch.ts     events of a folder's source -> looks, kernel readiness, overflow scans
 *   folder-scans.ts       start-up, periodic and fallback scans (wait for room, never drop)
 *   path-look.ts          consider(): one path, a marker or a data file to track
 *   candidates.ts         files waiting for stability or for their marker (bounded)
 *   markers.ts            ready markers
 *   stability-checks.ts   the tracker's due files: a second lstat and judge()
 *   handoff.ts            the ready queue and the sink (micro-batches, backoff)
 *   handed-fingerprints.ts  what the sink accepted (LRU), so rescans do not re-send it
 *   room.ts               the bound on files held, for scans to wait on
 */
import { Candidates } from './candidates.js';
import { EventDispatch } from './event-dispatch.js';
import { FolderRoots } from './folder-roots.js';
import { FolderScans } from './folder-scans.js';
import { type FolderState, folderState } from './folder-state.js';
import { HandedFingerprints } from './handed-fingerprints.js';
import { Handoff } from './handoff.js';
import { KernelReadiness } from './kernel-readiness.js';
import { Markers } from './markers.js';
import { PathLook } from './path-look.js';
import { StabilityTracker } from './readiness.js';
import { Room } from './room.js';
import { StabilityChecks } from './stability-checks.js';
import { type FolderWatcherOptions, resolveSettings, type WatchCounters, type WatcherStats, type WatchSettings } from './watcher-options.js';

export type { FolderWatcherOptions, WatchFolder, WatcherStats } from './watcher-options.js';

export class FolderWatcher {
  private readonly settings: WatchSettings;
  private readonly folders: FolderState[];
  private readonly counters: WatchCounters = { handed: 0, dropped: 0, scans: 0, sinkFailures: 0, invalidNames: 0, restarts: 0 };
  private readonly room: Room;
  private readonly handoff: Handoff;
  private readonly candidates: Candidates;
  private readonly checks: StabilityChecks;
  private readonly scans: FolderScans;
  private readonly roots: FolderRoots;

  private rescanTimer: NodeJS.Timeout | null = null;
  private rootTimer: NodeJS.Timeout | null = null;
  private started = false;
  private closed = false;
  private signalClosing: () => void = () => undefined;
  /** Resolves when close() begins: anything waiting on chokidar's `ready` stops waiting. */
  private readonly closing = new Promise<void>((resolve) => {
    this.signalClosing = resolve;
  });

  /**
   * Parts that call each other in a circle at run time (the tracker's timer and the checks,
   * roots and scans, roots and events) get an arrow to the later part, not the part itself.
   */
  constructor(opts: FolderWatcherOptions) {
    const settings = resolveSettings(opts);
    const log = opts.logger.child({ component: 'watch' });
    const { counters } = this;
    const closed = (): boolean => this.closed;
    this.settings = settings;
    this.folders = opts.folders.map((spec, index) => folderState(spec, index));
    const tracker = new StabilityTracker<number>({
      stableMs: settings.stableMs,
      capacity: settings.maxTracked,
      now: settings.now,
      onDue: () => this.checks.run(),
      onError: (err) => log.error({ err }, 'stability check failed; continuing'),
    });
    this.room = new Room({ capacity: settings.maxTracked, used: () => tracker.size + this.handoff.size, closed });
    const handed = new HandedFingerprints(settings.maxHanded);
    const handoff = new Handoff({ log, settings, sink: opts.sink, handed, counters, onSpace: () => this.room.release(), closed });
    this.handoff = handoff;
    const candidates = new Candidates({ log, tracker, maxTracked: settings.maxTracked, handed, handoff, room: this.room });
    this.candidates = candidates;
    const markers = new Markers(log, candidates, handoff);
    const look = new PathLook(candidates, markers);
    const kernel = new KernelReadiness();
    const folders = this.folders;
    this.checks = new StabilityChecks({ log, settings, folders, candidates, markers, handoff, room: this.room, kernel, closed });
    this.scans = new FolderScans({ log, settings, look, candidates, room: this.room, counters, closed, onRootMissing: (f, why) => this.roots.rootGone(f, why) });
    const events = new EventDispatch({
      log,
      settings,
      look,
      candidates,
      markers,
      handed,
      handoff,
      scans: this.scans,
      kernel,
      counters,
      closed,
      rootGone: (f, why) => this.roots.rootGone(f, why),
      checkRoots: () => this.roots.checkRoots(),
    });
    this.roots = new FolderRoots({ log, settings, folders, candidates, scans: this.scans, counters, open: (f) => events.open(f), closed, closing: this.closing });
  }

  get stats(): WatcherStats {
    return {
      tracked: this.candidates.tracker.size,
      awaitingMarker: this.candidates.awaitingMarker,
      queued: this.handoff.size,
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
    await Promise.all(this.folders.map((f) => this.roots.start(f, 'start')));
    if (this.closed) return;
    this.rescanTimer = setInterval(() => this.rescan(false), this.settings.rescanMs);
    this.rootTimer = setInterval(() => this.roots.checkRoots(), this.settings.rootCheckMs);
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
      void this.scans.scan(f, 'periodic');
    }
    this.handoff.retry();
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
    this.handoff.stopRetrying();
    this.candidates.tracker.close();
    this.room.release(true);
    await Promise.allSettled(this.folders.map((f) => this.roots.close(f)));
    await this.handoff.idle();
  }
}
