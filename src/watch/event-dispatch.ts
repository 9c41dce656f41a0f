/**
 * Events from a folder's event source (events.ts), dispatched: a file event becomes a look at
 * the path (coalesced, one in flight per path), a kernel close or rename makes a file ready at
 * once, the root going away goes to the folder's lifecycle, and errors (ENOSPC, EMFILE) and
 * overflows turn into scans. Events are only hints: every decision is made on our own lstat.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { fingerprintOf } from '../file-identity.js';
import type { Candidates } from './candidates.js';
import { startEventSource, type EventSource, type KernelEvent, type WatchEventKind } from './events.js';
import type { FolderScans } from './folder-scans.js';
import { type FolderState, fromWatchRoot } from './folder-state.js';
import type { HandedFingerprints } from './handed-fingerprints.js';
import type { Handoff } from './handoff.js';
import type { KernelReadiness, KernelReadyMode } from './kernel-readiness.js';
import type { Markers } from './markers.js';
import type { PathLook } from './path-look.js';
import type { WatchCounters, WatchSettings } from './watcher-options.js';

/**
 * Scan period of a folder that could not be watched (ENOSPC/EMFILE). An opendir scan of 50,000
 * entries took 227 ms here (scripts/bench/findings.md), so 5 s costs about 5% of a core.
 */
const FALLBACK_SCAN_MS = 5_000;

export interface EventDispatchOptions {
  log: Logger;
  settings: WatchSettings;
  look: PathLook;
  candidates: Candidates;
  markers: Markers;
  handed: HandedFingerprints;
  handoff: Handoff;
  scans: FolderScans;
  kernel: KernelReadiness;
  counters: WatchCounters;
  closed: () => boolean;
  /** The root was deleted or unmounted (folder-roots.ts). */
  rootGone: (f: FolderState, why: string) => void;
  /** Check every root now. */
  checkRoots: () => void;
}

export class EventDispatch {
  /** Paths with an event being looked at: 'again' when another event came meanwhile. */
  private readonly inFlight = new Map<string, 'once' | 'again'>();

  constructor(private readonly o: EventDispatchOptions) {}

  /** Starts `f`'s event source (on f.watchRoot), its events dispatched here. */
  open(f: FolderState): EventSource {
    // A new inotify queue: nothing known of the folder's writers yet, and its events complete.
    this.o.kernel.restart(f.root);
    const source = startEventSource({
      root: f.watchRoot,
      recursive: f.recursive,
      poll: f.poll,
      pollIntervalMs: this.o.settings.pollIntervalMs,
      ignored: (p, stats) => this.ignoredByWatcher(f, fromWatchRoot(f, p), stats),
      onEvent: (kind, p, st) => this.onEvent(f, source, kind, fromWatchRoot(f, p), st),
      onError: (err) => this.onWatcherError(f, source, err),
      onOverflow: (events) => this.onOverflow(f, source, events),
      ...(f.spec.readiness === 'stability' ? {} : { onKernel: (kind: KernelEvent, p: string) => this.onKernel(f, source, kind, fromWatchRoot(f, p)) }),
    });
    return source;
  }

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
    if (this.o.closed() || f.source !== source) return;
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
            this.o.rootGone(f, 'unlinkDir');
            // It may already be back (a quick rm -rf and mkdir): check now, not in a second.
            setImmediate(() => this.o.checkRoots());
          }
          break;
        case 'addDir':
          break;
      }
    } catch (err) {
      this.o.log.error({ path: p, err, event: kind }, 'handling a file event failed; continuing');
    }
  }

  /** A kernel event (native inotify): a file closed after writing or renamed in may be ready now. */
  private onKernel(f: FolderState, source: EventSource, kind: KernelEvent, p: string): void {
    if (this.o.closed() || f.source !== source) return;
    try {
      const mode = this.o.kernel.event(kind, p);
      if (mode !== null) this.readyNow(f, p, mode);
    } catch (err) {
      this.o.log.error({ path: p, err, event: kind }, 'handling a file event failed; continuing');
    }
  }

  /**
   * Ready by a kernel event: no stability wait. The lstat is in line (kernel events come from
   * local folders only); its fingerprint is the version handed on. A folder with a ready marker
   * still waits for the marker.
   */
  private readyNow(f: FolderState, p: string, mode: KernelReadyMode): void {
    if (!p.startsWith(`${f.root}/`)) return;
    const c = this.o.candidates;
    const rel = p.slice(f.root.length + 1);
    if (f.filter.markerTarget(rel) !== null) {
      this.considerCoalesced(f, p, 'hint');
      return;
    }
    if (!f.filter.isDataFile(rel)) return;
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) {
      c.forgetGone(p);
      return;
    }
    if (!c.isRegularFile(p, st)) return;
    const fp = fingerprintOf(st);
    if (this.o.handed.isHanded(p, fp)) return;
    c.untrack(p);
    if (this.o.markers.waitsAfterKernel(f, p, fp, mode)) return;
    this.o.log.debug({ path: p, readiness: mode }, 'file ready');
    this.o.handoff.enqueue(f, p, st);
  }

  private onWatcherError(f: FolderState, source: EventSource, err: NodeJS.ErrnoException): void {
    if (this.o.closed() || f.source !== source) return;
    if (err?.code === 'ENOSPC' || err?.code === 'EMFILE') {
      this.scanInstead(f, err);
      return;
    }
    this.o.log.error({ folder: f.root, dir: err?.path, err }, 'folder watcher error; continuing (rescans still run)');
  }

  /**
   * One watch per folder now, so this takes a tree of ~max_user_watches folders or another
   * process holding the watches. Files there are still found, by scans: say it once.
   */
  private scanInstead(f: FolderState, err: NodeJS.ErrnoException): void {
    if (f.fallbackTimer !== null) {
      this.o.log.debug({ folder: f.root, dir: err.path, err }, 'another folder could not be watched; scanned instead');
      return;
    }
    const everyMs = Math.min(this.o.settings.rescanMs, FALLBACK_SCAN_MS);
    this.o.log.error(
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
    this.o.counters.restarts++;
    f.fallbackTimer = setInterval(() => {
      if (!this.o.closed() && !f.gone && f.scan === null) void this.o.scans.scan(f, 'fallback');
    }, everyMs);
  }

  /** The inotify queue may have overflowed: rescan once the burst is over (after stableMs). */
  private onOverflow(f: FolderState, source: EventSource, events: number): void {
    if (this.o.closed() || f.source !== source) return;
    if (f.scan !== null) {
      f.scanAgain = true;
      return;
    }
    if (f.overflowTimer !== null) return;
    this.o.log.info({ folder: f.root, events }, 'a burst of file events may have overflowed the inotify queue: rescanning the folder');
    this.rescanAfterBurst(f);
  }

  private dropped(f: FolderState, p: string): void {
    this.o.counters.dropped++;
    if (f.overflowTimer !== null || f.scan !== null) {
      // A rescan is already coming (or running and will be repeated): it will find the file.
      if (f.scan !== null) f.scanAgain = true;
      return;
    }
    this.o.log.warn(
      { folder: f.root, path: p, maxTracked: this.o.settings.maxTracked },
      'too many files waiting for stability: dropping events and rescanning the folder (nothing is lost)',
    );
    this.rescanAfterBurst(f);
  }

  private rescanAfterBurst(f: FolderState): void {
    f.overflowTimer = setTimeout(() => {
      f.overflowTimer = null;
      if (!this.o.closed() && !f.gone) void this.o.scans.scan(f, 'overflow');
    }, this.o.settings.stableMs);
  }

  /**
   * At most one look at a path in flight: a file written in 64 KB chunks raises an event per
   * write, and one more look after the current one sees them all. `st`: the lstat the event
   * source just took (the first look uses it instead of taking another).
   */
  private considerCoalesced(f: FolderState, p: string, kind: WatchEventKind, st?: fs.Stats | null): void {
    if (this.inFlight.has(p)) {
      this.inFlight.set(p, 'again');
      return;
    }
    this.inFlight.set(p, 'once');
    const run = (known?: fs.Stats | null): void => {
      this.o.look.consider(f, p, known).then(
        (r) => {
          if (r === 'full') this.dropped(f, p);
          if (this.inFlight.get(p) === 'again' && !this.o.closed()) {
            this.inFlight.set(p, 'once');
            run();
          } else {
            this.inFlight.delete(p);
          }
        },
        (err: unknown) => {
          this.inFlight.delete(p);
          this.o.log.error({ path: p, err, event: kind }, 'handling a file event failed; continuing');
        },
      );
    };
    run(st);
  }
}
