/**
 * The one place that talks to chokidar. Everything else (readiness, scans, the sink) only needs
 * "something may have happened at this path", so the way we get events can change (folder-only
 * watches, raw fs.watch, fanotify) without touching the rest.
 *
 * chokidar's cost grows with the number of FILES (FACTS.md: one inotify watch per file, 20k
 * files -> 20,001 watches and 160 MB RSS; each event re-reads the folder, 4.2 s at 150k files;
 * ENOSPC at 200k). Our scans and readiness do not depend on chokidar's initial walk or its
 * stats, so swapping this file out is how we get past that.
 */
import type fs from 'node:fs';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

/**
 * chokidar's events, plus `hint`: a raw inotify event for a path, straight from fs.watch.
 *
 * Why hints: chokidar turns a directory event into `add` only after re-reading the whole
 * directory, and it throttles those re-reads with a 1 s timer that forgets the events that
 * came in meanwhile when a re-read takes longer than that. Measured with 20,000 files present
 * on this 2-core box under load: 4 of 10 new files got no `add` until the next event in the
 * folder (> 30 s), and the others took 600 ms at p50. The raw event arrives in about 0.3 ms
 * and costs us one lstat.
 */
export type WatchEventKind = 'add' | 'change' | 'unlink' | 'addDir' | 'unlinkDir' | 'hint';

export interface EventSourceOptions {
  /** Absolute folder to watch. */
  root: string;
  recursive: boolean;
  /** Stat-poll instead of inotify (network file systems: inotify misses other hosts' writes). */
  poll: boolean;
  pollIntervalMs: number;
  /** True for paths not worth watching (called with and without stats, as chokidar does). */
  ignored: (absPath: string, stats?: fs.Stats) => boolean;
  onEvent: (kind: WatchEventKind, absPath: string) => void;
  onError: (err: NodeJS.ErrnoException) => void;
}

export interface EventSource {
  /** Resolves when the initial walk is done and events are flowing. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export function startEventSource(opts: EventSourceOptions): EventSource {
  const w: FSWatcher = watch(opts.root, {
    persistent: true,
    // The start-up scan finds what is already there (and feeds readiness), so chokidar's
    // 100k initial `add` events would only be duplicates.
    ignoreInitial: true,
    // A symlink can point out of the watched root, or at itself: never followed.
    followSymlinks: false,
    usePolling: opts.poll,
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
  if (!opts.poll) {
    w.on('raw', (_event, evPath: string | null, details: unknown) => {
      const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
      if (typeof watched !== 'string' || typeof evPath !== 'string' || evPath === '') return;
      // A directory's fs.watch names an entry; a file's own fs.watch names the file itself.
      // (A folder `/a/x` holding an entry `x` reads as the folder: that one hint is lost, and
      // chokidar's own event still comes.)
      opts.onEvent('hint', path.basename(watched) === evPath ? watched : path.join(watched, evPath));
    });
  }
  w.on('error', (err: unknown) => opts.onError(err as NodeJS.ErrnoException));
  const ready = new Promise<void>((resolve) => w.once('ready', () => resolve()));
  return { ready, close: () => w.close() };
}
