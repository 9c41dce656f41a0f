/**
 * Readiness from kernel events, for folders watched through the native inotify: who has each
 * file open, and whether it was written since its last close.
 *
 * - A file renamed into the folder (IN_MOVED_TO) is ready at once: uploaders and rsync write a
 *   temporary name and rename the finished file into place.
 * - A file closed after writing (IN_CLOSE_WRITE) is ready once no open of it is left. inotify
 *   reports every open (IN_OPEN) and every last close of an open file description
 *   (IN_CLOSE_WRITE / IN_CLOSE_NOWRITE, also when a killed writer's descriptors are closed by
 *   the kernel), so counting them tells whether a second writer still holds the file, without
 *   a look through /proc/PID/fd of every process (which needs root for other users' processes
 *   and costs a readdir per process per file).
 * - A file written (IN_MODIFY), or created by an open (IN_CREATE while open), with no close
 *   since is never ready, however long the writer pauses: the stability timer (still used for
 *   files found by a scan, such as those present at start-up) is overruled by `writing()`.
 *
 * Opens made before the folder was watched are not counted; their writes still show as
 * IN_MODIFY and their close as IN_CLOSE_WRITE.
 *
 * The rule holds only while the events are complete. When the queue is full the kernel queues
 * one IN_Q_OVERFLOW record and drops what follows; while that record is still unread, records
 * that find the queue full again are dropped WITHOUT another one (fs/notify/notification.c
 * queues the overflow record only when it is not queued already). So the records read after
 * the overflow record, up to the read that finds the queue empty, may have gaps: a writer's
 * create, open and write kept and its close dropped would hold the file forever. Hence, per
 * watched folder: at `overflow` everything known about its files is forgotten, and until
 * `drained` (the first read after it that emptied the queue: every record queued since then
 * is complete, or follows a new overflow record) its opens, writes and closes are not counted
 * either. Such files go by the stability timer, as at start-up, and the folder is rescanned;
 * a write seen after `drained` holds its file again until its close. Renames in still make a
 * file ready (the rename itself is one record, a whole file under its final name).
 * A sub-folder no longer watched (moved out, deleted) has its files forgotten too (`unwatched`):
 * their closes are not seen from then on.
 */
import type { KernelEvent } from './event-source.js';

interface OpenState {
  /** Opens seen and not yet closed. */
  opens: number;
  /** Created by an open (IN_CREATE), not closed since. */
  created: boolean;
  /** Written (IN_MODIFY) since the last close after writing. */
  modified: boolean;
  /** A close after writing was seen; ready when the last open is closed. */
  closedWrite: boolean;
}

/** How a file became ready: the word the log uses. */
export type KernelReadyMode = 'renamed-in' | 'closed';

/**
 * Open files tracked at most; beyond it the oldest entry is forgotten (that file falls back to
 * the stability timer). 100,000 entries of about 150 bytes: 15 MB at worst.
 */
const MAX_FILES = 100_000;

export class KernelReadiness {
  private readonly files = new Map<string, OpenState>();
  /** Watched folders between an overflow and the read that drained their queue (see the top). */
  private readonly incomplete = new Set<string>();

  get size(): number {
    return this.files.size;
  }

  /**
   * Applies one event; returns how `p` became ready, or null when it is not ready now.
   * `overflow`, `drained` and `unwatched` name a folder; the other kinds a file.
   */
  event(kind: KernelEvent, p: string): KernelReadyMode | null {
    switch (kind) {
      case 'moved-in':
        this.files.delete(p);
        return 'renamed-in';
      case 'gone':
        this.files.delete(p);
        return null;
      case 'overflow':
        this.forgetUnder(p);
        this.incomplete.add(p);
        return null;
      case 'drained':
        this.incomplete.delete(p);
        return null;
      case 'unwatched':
        this.forgetUnder(p);
        return null;
    }
    if (this.incomplete.size > 0 && this.inIncomplete(p)) return null;
    return this.fileEvent(kind, p);
  }

  private fileEvent(kind: 'create' | 'open' | 'modify' | 'close-write' | 'close-nowrite', p: string): KernelReadyMode | null {
    switch (kind) {
      case 'create':
        this.state(p).created = true;
        return null;
      case 'open':
        this.state(p).opens++;
        return null;
      case 'modify': {
        const s = this.state(p);
        s.modified = true;
        s.closedWrite = false;
        return null;
      }
      case 'close-write': {
        const s = this.state(p);
        s.opens = Math.max(0, s.opens - 1);
        s.modified = false;
        s.created = false;
        s.closedWrite = true;
        return this.settle(p, s);
      }
      case 'close-nowrite': {
        const s = this.files.get(p);
        if (s === undefined) return null;
        s.opens = Math.max(0, s.opens - 1);
        if (s.opens === 0) s.created = false;
        return this.settle(p, s);
      }
    }
  }

  /** True while a writer may be at work on `p`: it must not be handed on, whatever its stats say. */
  writing(p: string): boolean {
    const s = this.files.get(p);
    return s !== undefined && (s.modified || (s.created && s.opens > 0) || (s.closedWrite && s.opens > 0));
  }

  forget(p: string): void {
    this.files.delete(p);
  }

  /** Folder `dir` is watched by a new inotify instance: what the old one said is void. */
  restart(dir: string): void {
    this.forgetUnder(dir);
    this.incomplete.delete(dir);
  }

  /** Forgets every file in folder `dir` and below (a walk of the map: overflows are rare). */
  private forgetUnder(dir: string): void {
    const prefix = `${dir}/`;
    for (const p of this.files.keys()) if (p.startsWith(prefix)) this.files.delete(p);
  }

  private inIncomplete(p: string): boolean {
    for (const dir of this.incomplete) if (p.startsWith(`${dir}/`)) return true;
    return false;
  }

  private settle(p: string, s: OpenState): KernelReadyMode | null {
    if (s.opens > 0 || s.modified) return null;
    this.files.delete(p);
    return s.closedWrite ? 'closed' : null;
  }

  private state(p: string): OpenState {
    let s = this.files.get(p);
    if (s === undefined) {
      if (this.files.size >= MAX_FILES) {
        const oldest = this.files.keys().next();
        if (oldest.done !== true) this.files.delete(oldest.value);
      }
      s = { opens: 0, created: false, modified: false, closedWrite: false };
      this.files.set(p, s);
    }
    return s;
  }
}
