/**
 * The life of each watched folder's root: start watching it (or wait for it to exist), notice
 * it deleted, unmounted, or replaced (recreated, remounted) and watch it again, and stop.
 *
 *   missing ──(root check sees it)──> start ──> watching ──(unlinkDir, scan ENOENT, root check)──> gone
 *      ^                                            └──(root check: another folder now)──> gone, start again
 *      └────────────────────────────────────────────────────────────────────────────────────┘
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { pollDecision } from '../mounts.js';
import type { Candidates } from './candidates.js';
import type { EventSource } from './event-source.js';
import type { FolderScans } from './folder-scans.js';
import { type FolderState, rootIdOf } from './folder-state.js';
import type { WatchCounters, WatchSettings } from './watcher-options.js';

export interface FolderRootsOptions {
  log: Logger;
  settings: WatchSettings;
  folders: readonly FolderState[];
  candidates: Candidates;
  scans: FolderScans;
  counters: WatchCounters;
  /** Starts the folder's event source (event-dispatch.ts). */
  open: (f: FolderState) => EventSource;
  closed: () => boolean;
  /** Resolves when close() begins: anything waiting on chokidar's `ready` stops waiting. */
  closing: Promise<void>;
}

export class FolderRoots {
  constructor(private readonly o: FolderRootsOptions) {}

  /** Watch `f` and scan it once; a folder that does not exist yet is waited for. */
  start(f: FolderState, reason: 'start' | 'recreated' | 'remounted'): Promise<void> {
    const run = (async () => {
      if (!(await this.findRoot(f)) || this.o.closed()) return;
      if (reason !== 'start') this.o.counters.restarts++;
      const source = this.o.open(f);
      f.source = source;
      f.readiness = source.kernelEvents ? 'kernel-events' : 'stability';
      await Promise.race([source.ready, this.o.closing]);
      if (this.o.closed() || f.source !== source) return;
      this.o.log.info({ folder: f.root, poll: f.poll, readiness: f.readiness, reason }, 'watching folder');
      await this.o.scans.scan(f, reason);
    })();
    f.transition = run;
    return run
      .catch(async (err: unknown) => {
        this.o.log.error({ folder: f.root, err }, 'could not start watching folder; retrying at the next root check');
        await this.stopSource(f);
        f.gone = true;
      })
      .finally(() => {
        if (f.transition === run) f.transition = null;
      });
  }

  /** Stops `f` for good (close()): its timers, its source, and waits for its scan. */
  async close(f: FolderState): Promise<void> {
    if (f.overflowTimer !== null) clearTimeout(f.overflowTimer);
    if (f.fallbackTimer !== null) clearInterval(f.fallbackTimer);
    await this.stopSource(f);
    await f.transition?.catch(() => undefined);
    await this.stopSource(f); // one a transition may have started before it saw `closed`
    await f.scan?.catch(() => undefined);
  }

  /**
   * The root was deleted or unmounted. A watch on a deleted folder goes silent for good (docs/stack-behaviour.md,
   * for chokidar and for inotify alike), so it is dropped and the root check re-creates it.
   */
  rootGone(f: FolderState, why: string): void {
    if (f.gone || this.o.closed()) return;
    f.gone = true;
    this.o.log.warn({ folder: f.root, why }, 'watched folder went away; watching for it to come back');
    this.o.candidates.forgetUnder(`${f.root}/`);
    const stop = this.stopSource(f);
    f.transition = stop;
    void stop.finally(() => {
      if (f.transition === stop) f.transition = null;
    });
  }

  /** Periodic: a missing root, a root that came back, or a root that is now another folder. */
  checkRoots(): void {
    for (const f of this.o.folders) {
      // Asynchronous, one at a time per folder: a stat on a hung NFS server can take minutes,
      // and must neither block the event loop nor pile up.
      if (f.transition !== null || f.rootCheck || this.o.closed()) continue;
      f.rootCheck = true;
      fs.stat(f.root, (err, st) => {
        f.rootCheck = false;
        try {
          this.afterRootStat(f, err === null && st.isDirectory() ? rootIdOf(st) : null);
        } catch (e) {
          this.o.log.error({ folder: f.root, err: e }, 'checking the watched folder failed; continuing');
        }
      });
    }
  }

  /** Is the root there (a folder)? Sets gone, watchRoot, rootId and poll accordingly. */
  private async findRoot(f: FolderState): Promise<boolean> {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(f.root);
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      f.watchRoot = await fs.promises.realpath(f.root);
    } catch (err) {
      f.gone = true;
      this.o.log.warn({ folder: f.root, err }, 'watched folder is missing; watching for it to appear');
      return false;
    }
    if (this.o.closed()) return false;
    f.gone = false;
    f.rootId = rootIdOf(st);
    f.poll = this.decidePoll(f);
    return true;
  }

  private afterRootStat(f: FolderState, id: string | null): void {
    if (f.transition !== null || this.o.closed()) return;
    if (f.gone) {
      if (id !== null) {
        this.o.log.info({ folder: f.root }, 'watched folder is back');
        void this.start(f, 'recreated');
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
        await this.start(f, 'remounted');
      })();
      f.transition = restart;
      void restart.finally(() => {
        if (f.transition === restart) f.transition = null;
      });
    }
  }

  private decidePoll(f: FolderState): boolean {
    const d = pollDecision(f.spec.poll, f.root, this.o.settings.isNetworkFs);
    if ('poll' in d) return d.poll;
    // Unknown: inotify, as for a local folder.
    this.o.log.warn({ folder: f.root, err: d.unknown }, 'could not tell whether the folder is on a network file system; using inotify');
    return false;
  }

  private async stopSource(f: FolderState): Promise<void> {
    const source = f.source;
    f.source = null;
    if (source === null) return;
    try {
      await source.close();
    } catch (err) {
      this.o.log.warn({ folder: f.root, err }, 'closing the folder watcher failed');
    }
  }
}
