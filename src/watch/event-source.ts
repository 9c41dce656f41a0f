/**
 * What a source of file events is and is told (events.ts starts one: inotify per folder in
 * dir-watches.ts, or chokidar's polling). A file of its own so that dir-watches.ts need not
 * import the factory that builds it.
 */
import type fs from 'node:fs';

/**
 * `hint` is "look at this path" from a folder's inotify watch; it may carry the lstat just
 * taken of it. `add`/`change`/`unlink` come from chokidar's polling. `addDir`/`unlinkDir` say a
 * folder appeared or went away (for the watched root itself: it was deleted or moved).
 */
export type WatchEventKind = 'add' | 'change' | 'unlink' | 'addDir' | 'unlinkDir' | 'hint';

/**
 * A file event with its kernel kind kept (native inotify only, see kernel-readiness.ts).
 * Three name a folder instead of a file: `overflow`, the kernel dropped events and what is
 * known about its open files is void; `drained`, a read after that emptied the queue (events
 * are complete again from the next read on); `unwatched`, a sub-folder's watch is gone.
 */
export type KernelEvent =
  | 'create'
  | 'open'
  | 'modify'
  | 'close-write'
  | 'close-nowrite'
  | 'moved-in'
  | 'gone'
  | 'overflow'
  | 'drained'
  | 'unwatched';

export interface EventSourceOptions {
  /** Absolute folder to watch. */
  root: string;
  recursive: boolean;
  /** Stat-poll instead of inotify (network file systems: inotify misses other hosts' writes). */
  poll: boolean;
  pollIntervalMs: number;
  /** True for paths not worth watching (called with and without stats, as chokidar does). */
  ignored: (absPath: string, stats?: fs.Stats) => boolean;
  /** `stats`: an lstat of the path taken just now; null when that lstat found nothing there. */
  onEvent: (kind: WatchEventKind, absPath: string, stats?: fs.Stats | null) => void;
  /** ENOSPC/EMFILE when a folder cannot be watched carry that folder in `path`. */
  onError: (err: NodeJS.ErrnoException) => void;
  /** inotify only: so many events came at once that the kernel may have dropped some. */
  onOverflow?: (events: number) => void;
  /** Asks for kernel event kinds (used when the native part is loaded). */
  onKernel?: (kind: KernelEvent, absPath: string) => void;
}

export interface EventSource {
  /** Resolves when the initial walk is done and events are flowing. */
  readonly ready: Promise<void>;
  /** onKernel is being called: readiness can go by closes and renames. */
  readonly kernelEvents: boolean;
  close(): Promise<void>;
}
