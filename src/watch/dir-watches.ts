/**
 * Events from one inotify watch per FOLDER (fs.watch on a directory), never one per file.
 *
 * inotify on a directory reports create, delete, rename and modify of every entry in it, by
 * name, so one watch covers a folder however many files it holds. chokidar instead watches
 * every file and re-reads (readdir + an lstat per entry) a folder on each event in it, throttled
 * to once a second: measured here with 20,000 files present and 2,000 new ones written, 1,200 ms
 * of CPU with chokidar told to ignore every file (it still re-reads the folder) against 97 ms
 * for one fs.watch; and per-file watches ran out at 200k files (ENOSPC, docs/stack-behaviour.md). So the folder
 * TREE is tracked here too: a `rename` event whose name is a directory adds a watch on it (and
 * on everything below it), and a watched directory that is gone has its watches closed.
 *
 * Queue overflow: when more than max_queued_events (16,384 here) wait while the event loop is
 * busy, the kernel drops the rest and says so with one IN_Q_OVERFLOW event, which libuv discards
 * without a word. Measured: a producer writing 10,000 files (two events each) into the folder of
 * a daemon at nice 10 lost events, and the files waited 59 s for the periodic rescan. libuv
 * reads the whole queue in one poll phase, so an overflow shows as a phase delivering at least
 * the queue's size; half of it in one phase (shared by every folder: one inotify descriptor per
 * event loop) calls onOverflow, and the watcher rescans soon.
 */
import fs from 'node:fs';
import path from 'node:path';
import { nativeAddon } from '../native/addon.js';
import { IN, Inotify, type RawEvent } from '../native/inotify.js';
import type { EventSource, EventSourceOptions, KernelEvent } from './event-source.js';

function maxQueuedEvents(): number {
  try {
    const n = Number(fs.readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
    return n > 0 ? n : 16_384;
  } catch {
    return 16_384;
  }
}

/** Events in one poll phase that may mean the kernel's queue overflowed (see the top). */
const BURST_SUSPECT = Math.floor(maxQueuedEvents() / 2);

/** Every live DirWatches: an overflow of the one shared queue may have cost any of them events. */
const live = new Set<DirWatches>();
let burst = 0;
let burstReported = false;

function countEvent(): void {
  if (burst++ === 0) {
    setImmediate(() => {
      burst = 0;
      burstReported = false;
    });
  }
  if (burst >= BURST_SUSPECT && !burstReported) {
    burstReported = true;
    for (const w of live) w.suspectOverflow();
  }
}

interface WatchedDir {
  /** fs.watch, or null when the folder is a watch descriptor (`wd`) of the native inotify. */
  readonly watcher: fs.FSWatcher | null;
  readonly wd: number;
  /** idOf() when watched: a directory deleted and made again under the same name is another one. */
  readonly id: string;
}

/**
 * Inode plus birth time: ext4 gives a folder deleted and made again at once the SAME inode number
 * (measured, see folder-state.ts rootIdOf), and the old watch hears nothing from the new folder.
 */
function idOf(st: fs.Stats): string {
  return `${st.ino}:${st.birthtimeMs}`;
}

function codeOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as NodeJS.ErrnoException).code : undefined;
}

/** The folder the error is about, for the log line (fs.watch's own errors do not say). */
function withPath(err: unknown, dir: string): NodeJS.ErrnoException {
  const e = (err instanceof Error ? err : new Error(String(err))) as NodeJS.ErrnoException;
  if (e.path === undefined) e.path = dir;
  return e;
}

/** A file event of the native inotify, by mask bit, as the readiness rule reads it. */
const FILE_EVENTS: ReadonlyArray<[number, KernelEvent]> = [
  [IN.CREATE, 'create'],
  [IN.OPEN, 'open'],
  [IN.MODIFY, 'modify'],
  [IN.CLOSE_WRITE, 'close-write'],
  [IN.CLOSE_NOWRITE, 'close-nowrite'],
  [IN.MOVED_TO, 'moved-in'],
  [IN.MOVED_FROM, 'gone'],
  [IN.DELETE, 'gone'],
];

/** Events that change what is at a name: looked at (lstat) as fs.watch events are. */
const LOOK_EVENTS = IN.CREATE | IN.MOVED_FROM | IN.MOVED_TO | IN.DELETE | IN.ATTRIB;

export class DirWatches implements EventSource {
  readonly ready: Promise<void>;
  /** True when the folder is watched through the native inotify, with its event kinds. */
  readonly kernelEvents: boolean;
  private readonly dirs = new Map<string, WatchedDir>();
  private readonly byWd = new Map<number, string>();
  private readonly inotify: Inotify | null;
  private closed = false;
  /** An overflow record was read and no read has emptied the queue since (kernel-readiness.ts). */
  private overflowed = false;

  constructor(private readonly opts: EventSourceOptions) {
    this.inotify = this.openInotify();
    this.kernelEvents = this.inotify !== null;
    this.ready = this.addTree(opts.root, false).catch((err: unknown) => opts.onError(withPath(err, opts.root)));
    live.add(this);
  }

  /**
   * The native inotify, one instance per watched root (fs.watch shares one per process; a root
   * is a configured folder, so a few). None when not asked for or not loaded, and none when
   * the kernel refuses an instance (EMFILE: fs.inotify.max_user_instances): fs.watch then
   * meets the same limit and reports it the way the watcher already handles.
   */
  private openInotify(): Inotify | null {
    const addon = this.opts.onKernel === undefined ? null : nativeAddon();
    if (addon === null) return null;
    try {
      return new Inotify(addon, (events, drained) => this.onNative(events, drained));
    } catch {
      return null;
    }
  }

  /** Events may have been lost (see the top of this file). */
  suspectOverflow(): void {
    if (!this.closed) this.opts.onOverflow?.(BURST_SUSPECT);
  }

  close(): Promise<void> {
    this.closed = true;
    live.delete(this);
    for (const d of this.dirs.values()) d.watcher?.close();
    this.dirs.clear();
    this.byWd.clear();
    this.inotify?.close();
    return Promise.resolve();
  }

  /**
   * Watch `top` and every folder below it (when recursive). Each folder is watched BEFORE it is
   * read, so a file created meanwhile is either in the listing or in an event (or both: the
   * watcher dedupes). `hintFiles`: a folder that appeared while running may already hold files
   * (`mv` of a full folder, `mkdir` then a quick write), so they are handed on as hints; at
   * start-up the watcher's own scan finds them.
   */
  private async addTree(top: string, hintFiles: boolean): Promise<void> {
    const stack = [top];
    while (stack.length > 0 && !this.closed) {
      const dir = stack.pop() as string;
      let st: fs.Stats;
      try {
        st = await fs.promises.lstat(dir);
      } catch {
        continue; // gone again already
      }
      if (this.closed || !st.isDirectory() || !this.watch(dir, idOf(st))) continue;
      if (!this.opts.recursive && !hintFiles) return; // the root alone, and no listing needed
      let entries: fs.Dir;
      try {
        entries = await fs.promises.opendir(dir, { bufferSize: 256 });
      } catch (err) {
        if (codeOf(err) !== 'ENOENT' && codeOf(err) !== 'ENOTDIR') this.opts.onError(withPath(err, dir));
        continue;
      }
      try {
        for await (const e of entries) {
          if (this.closed) return;
          const p = `${dir}/${e.name}`;
          // DT_UNKNOWN (some NFS servers, older XFS): maybe a folder; the lstat at the top decides.
          const unknown = !e.isDirectory() && !e.isFile() && !e.isSymbolicLink() && !e.isFIFO() && !e.isSocket();
          if ((e.isDirectory() || unknown) && this.opts.recursive && !this.opts.ignored(p)) stack.push(p);
          if (!e.isDirectory() && hintFiles) this.opts.onEvent('hint', p);
        }
      } catch (err) {
        if (codeOf(err) !== 'ENOENT') this.opts.onError(withPath(err, dir));
      }
    }
  }

  /** True when `dir` is watched now. ENOSPC (watches exhausted) goes to onError, once per folder. */
  private watch(dir: string, id: string): boolean {
    const old = this.dirs.get(dir);
    if (old !== undefined) {
      if (old.id === id) return true;
      this.unwatchTree(dir);
    }
    if (this.inotify !== null) return this.watchNative(dir, id);
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(dir, { persistent: true }, (event, name) => this.onRaw(dir, event, name));
    } catch (err) {
      if (codeOf(err) !== 'ENOENT' && codeOf(err) !== 'ENOTDIR') this.opts.onError(withPath(err, dir));
      return false;
    }
    watcher.on('error', (err) => {
      if (this.dirs.get(dir)?.watcher === watcher) this.unwatchTree(dir);
      else watcher.close();
      if (!this.closed && codeOf(err) !== 'ENOENT' && codeOf(err) !== 'EPERM') this.opts.onError(withPath(err, dir));
    });
    this.dirs.set(dir, { watcher, wd: -1, id });
    return true;
  }

  private watchNative(dir: string, id: string): boolean {
    let wd: number;
    try {
      wd = (this.inotify as Inotify).add(dir);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT' && codeOf(err) !== 'ENOTDIR') this.opts.onError(withPath(err, dir));
      return false;
    }
    this.dirs.set(dir, { watcher: null, wd, id });
    this.byWd.set(wd, dir);
    return true;
  }

  /** One read of the native inotify queue; `drained`: it emptied the queue. */
  private onNative(events: RawEvent[] | null, drained: boolean): void {
    if (this.closed) return;
    if (events === null) {
      this.opts.onError(withPath(new Error('polling the inotify descriptor failed'), this.opts.root));
      return;
    }
    for (const e of events) {
      try {
        this.onNativeEvent(e);
      } catch (err) {
        this.opts.onError(withPath(err, this.opts.root));
      }
    }
    if (this.overflowed && drained && !this.closed) {
      // Records queued from now on are complete, or come after a new overflow record.
      this.overflowed = false;
      this.opts.onKernel?.('drained', this.opts.root);
    }
  }

  private onNativeEvent(e: RawEvent): void {
    if ((e.mask & IN.Q_OVERFLOW) !== 0) {
      // The kernel says so itself here: no guessing from the size of a burst.
      this.overflowed = true;
      this.opts.onKernel?.('overflow', this.opts.root);
      this.opts.onOverflow?.(maxQueuedEvents());
      return;
    }
    const dir = this.byWd.get(e.wd);
    if (dir === undefined) return;
    if ((e.mask & IN.IGNORED) !== 0) {
      this.byWd.delete(e.wd);
      if (this.dirs.get(dir)?.wd === e.wd) this.checkSelf(dir);
      return;
    }
    if (e.name === '') {
      if ((e.mask & (IN.DELETE_SELF | IN.MOVE_SELF | IN.UNMOUNT)) !== 0) this.checkSelf(dir);
      return;
    }
    if ((e.mask & IN.ISDIR) !== 0) {
      // Opens of sub-folders (every scan reads them) say nothing; the rest is the tree's business.
      if ((e.mask & LOOK_EVENTS) !== 0) this.look(dir, e.name);
      return;
    }
    const p = `${dir}/${e.name}`;
    if (this.opts.ignored(p)) return;
    for (const [bit, kind] of FILE_EVENTS) if ((e.mask & bit) !== 0) this.opts.onKernel?.(kind, p);
    if ((e.mask & LOOK_EVENTS) !== 0) this.look(dir, e.name);
  }

  private unwatchTree(dir: string): void {
    const prefix = `${dir}/`;
    for (const [d, w] of this.dirs) {
      if (d === dir || d.startsWith(prefix)) {
        w.watcher?.close();
        if (w.watcher === null) {
          this.byWd.delete(w.wd);
          this.inotify?.remove(w.wd);
        }
        this.dirs.delete(d);
      }
    }
    // Closes of files below are not seen from now on: what is known of their writers is void.
    if (this.inotify !== null && !this.closed) this.opts.onKernel?.('unwatched', dir);
  }

  /** `rename` or `change` alike: the lstat tells more than either. */
  private onRaw(dir: string, _event: string, name: string | null): void {
    if (this.closed) return;
    countEvent();
    if (name === null || name === '') return;
    this.look(dir, name);
  }

  private look(dir: string, name: string): void {
    // inotify names the watched folder itself (its basename) when it is deleted or moved away.
    if (name === path.basename(dir)) this.checkSelf(dir);
    const p = `${dir}/${name}`;
    if (this.opts.ignored(p)) return; // a pruned name (`.staging`, `.x.csv.AbC12`): nothing to see
    // lstatSync, not fs.lstat: events come one at a time, and one lstat through the thread pool
    // cost 43-60 us of CPU here against 6-10 us in line (20,000 files, 2 cores, loaded); in the
    // producer scenario's daemon profile the thread-pool lstats were 30% of the CPU. Safe to block
    // on: this runs only for local file systems (network ones are polled, see folder-roots.ts decidePoll).
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(p, { throwIfNoEntry: false });
    } catch {
      this.opts.onEvent('hint', p); // EACCES and the like: the watcher's own lstat says so
      return;
    }
    const watched = this.dirs.get(p);
    if (st === undefined) {
      if (watched !== undefined) this.dirGone(p);
      this.opts.onEvent('hint', p, null);
      return;
    }
    if (st.isDirectory()) {
      if (!this.opts.recursive || (watched !== undefined && watched.id === idOf(st))) return;
      if (watched !== undefined) this.dirGone(p);
      if (this.opts.ignored(p, st)) return;
      this.opts.onEvent('addDir', p);
      this.addTree(p, true).catch((e: unknown) => this.opts.onError(withPath(e, p)));
      return;
    }
    if (watched !== undefined) this.dirGone(p);
    // The stat just taken is handed along so that the watcher does not take it again.
    this.opts.onEvent('hint', p, st);
  }

  /** An event naming the folder itself: is it still there, and still the same folder? */
  private checkSelf(dir: string): void {
    const watched = this.dirs.get(dir);
    if (watched === undefined) return;
    fs.lstat(dir, (err, st) => {
      if (this.closed || this.dirs.get(dir) !== watched) return;
      if (err === null && st.isDirectory() && idOf(st) === watched.id) return;
      this.dirGone(dir);
    });
  }

  private dirGone(dir: string): void {
    this.unwatchTree(dir);
    this.opts.onEvent('unlinkDir', dir);
  }
}
