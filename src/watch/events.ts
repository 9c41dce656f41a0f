/**
 * Where file events come from. Everything else (readiness, scans, the sink) only needs
 * "something may have happened at this path", so the way we get events can change without
 * touching the rest. The one file that talks to chokidar.
 *
 * - inotify (local file systems): one fs.watch per FOLDER (dir-watches.ts). chokidar's cost
 *   grows with the number of FILES (docs/stack-behaviour.md: one inotify watch per file, 20k files -> 20,001
 *   watches and 160 MB RSS; each event re-reads the folder, 4.2 s at 150k files; ENOSPC at 200k),
 *   and even told to ignore files it re-reads a folder on every event in it (dir-watches.ts has
 *   the numbers), so it cannot be the one that tracks the tree either.
 *   With the native part loaded, the same folders are watched through its inotify instead, which
 *   keeps the event kinds (a close after writing, a rename into the folder) for readiness.
 * - polling (network file systems, where inotify misses other hosts' writes): chokidar's
 *   usePolling, as before.
 */
import { watch, type FSWatcher } from 'chokidar';
import { DirWatches } from './dir-watches.js';
import type { EventSource, EventSourceOptions } from './event-source.js';

export type { EventSource, EventSourceOptions, KernelEvent, WatchEventKind } from './event-source.js';

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
