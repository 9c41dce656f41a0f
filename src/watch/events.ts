/**
 * Where file events come from. Everything else (readiness, scans, the sink) only needs
 * "something may have happened at this path", so the way we get events can change without
 * touching the rest. The one file that talks to chokidar.
 *
 * - inotify (local file systems): one fs.watch per FOLDER (dir-watches.ts). chokidar's cost
 *   grows with the number of FILES (docs/stack-facts.md: one inotify watch per file, 20k files -> 20,001
 *   watches and 160 MB RSS; each event re-reads the folder, 4.2 s at 150k files; ENOSPC at 200k),
 *   and even told to ignore files it re-reads a folder on every event in it (dir-watches.ts has
 *   the numbers), so it cannot be the one that tracks the tree either.
 *   With the native part loaded, the same folders are watched through its inotify instead, which
 *   keeps the event kinds (a close after writing, a rename into the folder) for readiness.
 * - polling (network file systems, where inotify misses other hosts' writes): chokidar's
 *   usePolling, as before.
 */
import type fs from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';
import { DirWatches } from './dir-watches.js';

/**
 * `hint` is "look at this path" from a folder's inotify watch; it may carry the lstat just
 * taken of it. `add`/`change`/`unlink` come from chokidar's polling. `addDir`/`unlinkDir` say a
 * folder appeared or went away (for the watched root itself: it was deleted or moved).
 */
export type WatchEventKind = 'add' | 'change' | 'unlink' | 'addDir' | 'unlinkDir' | 'hint';

/**
 * A file event with its kernel kind kept (native inotify only, see kernel-readiness.ts):
 * `overflow` means the kernel dropped events and what is known about open files is void.
 */
export type KernelEvent = 'create' | 'open' | 'modify' | 'close-write' | 'close-nowrite' | 'moved-in' | 'gone' | 'overflow';

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

export function startEventSource(opts: EventSourceOptions): EventSource {
  return opts.poll ? startPolling(opts) : new DirWatches(opts);
}

function startPolling(opts: EventSourceOptions): EventSource {
  const w: FSWatcher = watch(opts.root, {
    persistent: true,
    // The start-up scan finds what is already there (and feeds readiness), so chokidar's
    // 100k initial `add` events would only be duplicates.
    ignoreInitial: true,
    // A symlink can point out of the watched root, or at itself: never followed.
    followSymlinks: false,
    usePolling: true,
    interval: opts.pollIntervalMs,
    binaryInterval: opts.pollIntervalMs,
    // Readiness is ours (see readiness.ts), not awaitWriteFinish.
    awaitWriteFinish: false,
    ignorePermissionErrors: true,
    ...(opts.recursive ? {} : { depth: 0 }),
    ignored: opts.ignored,
  });
  const kinds = ['add', 'change', 'unlink', 'addDir', 'unlinkDir'] as const;
  for (const kind of kinds) w.on(kind, (p: string) => opts.onEvent(kind, p));
  w.on('error', (err: unknown) => opts.onError(err as NodeJS.ErrnoException));
  const ready = new Promise<void>((resolve) => w.once('ready', () => resolve()));
  return { ready, kernelEvents: false, close: () => w.close() };
}
