/**
 * Which watched folder a file is in, and how its files are checked: in line for local folders,
 * through the thread pool for polled (network) ones (see file-checks.ts).
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { pollDecision } from '../mounts.js';
import type { RunnerFolder } from './runner-options.js';

/** The deepest watched folder holding `fileUrl`, or undefined when none does. */
export function folderOf(fileUrl: string, folders: readonly RunnerFolder[]): RunnerFolder | undefined {
  let best: RunnerFolder | undefined;
  for (const f of folders) {
    const rel = path.relative(f.dir, fileUrl);
    if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) && (!best || f.dir.length > best.dir.length)) best = f;
  }
  return best;
}

/**
 * Local folders are checked in line, polled (network) ones through the thread pool (see
 * file-checks.ts). Decided once per folder, as the watcher does at start. A file outside
 * every folder (not from the watcher) is checked through the pool: nothing says where it is.
 */
export class CheckPlacement {
  /** Per folder: check its files in line (local) or through the thread pool (polled)? */
  private readonly inLine = new WeakMap<RunnerFolder, boolean>();

  constructor(private readonly o: { logger: Logger; workerId: string; isNetworkFs?: (dir: string) => boolean }) {}

  checksInLine(folder: RunnerFolder | undefined): boolean {
    if (!folder) return false;
    let inLine = this.inLine.get(folder);
    if (inLine === undefined) {
      inLine = !this.polled(folder);
      this.inLine.set(folder, inLine);
    }
    return inLine;
  }

  private polled(folder: RunnerFolder): boolean {
    const d = pollDecision(folder.poll ?? 'auto', folder.dir, this.o.isNetworkFs);
    if ('poll' in d) return d.poll;
    // Unknown: through the pool, which is only slower, never stuck on a hung server.
    this.o.logger.warn({ folder: folder.dir, err: d.unknown, workerId: this.o.workerId }, 'could not tell whether the folder is on a network file system; checking its files through the thread pool');
    return true;
  }
}
