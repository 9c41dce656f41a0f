/**
 * One watched folder's state (its event source, whether its root is there, its scan and
 * timers), and the small facts about paths and folders every part of the watcher asks.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { EventSource } from './event-source.js';
import { compileFilter, type FileFilter } from './filter.js';
import { lstat } from './scan.js';
import type { WatchFolder } from './watcher-options.js';

export interface FolderState {
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

/** What a look at one path ends in: 'full' when the tracker had no room for it. */
export type ConsiderResult = 'ok' | 'full';

/** Stats in flight while a scan or a due-check runs; bounds the thread pool's queue. */
export const STAT_BATCH = 256;

/** Sets that only exist to log something once are capped, so a hostile folder cannot grow them. */
export const LOG_ONCE_CAP = 100_000;

export function folderState(spec: WatchFolder, index: number): FolderState {
  return {
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
  };
}

/** The folder's ready-marker suffix, or null when it uses none. */
export function markerOf(f: FolderState): string | null {
  const marker = f.spec.readyMarker;
  return marker !== null && marker !== '' ? marker : null;
}

/**
 * Identity of a folder: dev and inode, plus birth time because ext4 hands a folder deleted and
 * created again at once the SAME inode number (measured: 2146791 both times) and a watcher on
 * the old one hears nothing. Birth time is 0 where the file system does not record it.
 */
export function rootIdOf(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeMs}`;
}

/** A path the event source reported under watchRoot, as a path under the configured root. */
export function fromWatchRoot(f: FolderState, p: string): string {
  if (f.watchRoot === f.root) return p;
  if (p === f.watchRoot) return f.root;
  return p.startsWith(`${f.watchRoot}/`) ? f.root + p.slice(f.watchRoot.length) : p;
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/**
 * lstat in line for a folder on a local file system, through the thread pool for a polled
 * (network) one. One lstat at a time (events, a due-check at a steady trickle of files) cost
 * 43-60 us of CPU through the thread pool here against 6-10 us in line (20,000 files, 2 cores,
 * loaded): the hops were 30% of the daemon's CPU in the producer scenario. A hung NFS server
 * would block the event loop in lstatSync, hence not there (scan.ts lstat says more).
 */
export function lstatIn(f: FolderState, p: string): Promise<fs.Stats> {
  if (f.poll) return lstat(p);
  try {
    return Promise.resolve(fs.lstatSync(p));
  } catch (err) {
    return Promise.reject(err);
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
