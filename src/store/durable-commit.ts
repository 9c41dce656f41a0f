/**
 * Makes SQLite commits survive a power cut, on demand.
 *
 * The database runs with `synchronous=NORMAL` (open-database.ts): in WAL mode a commit only
 * writes its frames to the -wal file, and the -wal is synced at checkpoints, not at commits. A
 * crash of ckpt keeps such a commit (the page cache belongs to the kernel), a power cut may not.
 * That is fine while losing a commit only means a file runs again. It is not fine once ckpt is
 * about to take the file out of its folder (an after-action that moves or deletes it), or to
 * delete a degraded-mode journal whose outcomes the commit carries: then the commit must be on
 * disk first ("durable before destructive", docs/power-loss.md).
 *
 * syncCommitted() does that after the fact, for every commit made so far on any connection to
 * the file: fdatasync(2) of the -wal file. fsync works on the file, not on the descriptor, so
 * a descriptor of our own flushes the frames SQLite wrote through its own. Against toggling
 * `PRAGMA synchronous=FULL` around the transaction, counted with strace over 200 commits: one
 * sync per commit either way (200 fdatasync here, 208 fsync with the toggle), and the times
 * per commit too noisy on this shared machine to tell apart (2.7-9.4 ms with the toggle,
 * 8.9-10.6 ms here). But the toggle must be decided before the transaction starts, and a claim
 * only knows afterwards whether its lease sweep made a file dead. (`PRAGMA wal_checkpoint` is
 * not a substitute: a checkpoint that readers hold back copies nothing and syncs nothing.)
 *
 * The first sync of a new -wal file also syncs its folder, as SQLite does for the files it
 * creates: a synced -wal whose name is not yet on disk would be lost with its frames.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SqliteDatabase } from './open-database.js';

/** The -wal inode whose folder entry is known durable, per database file. */
const dirSynced = new Map<string, number>();

export function syncCommitted(db: SqliteDatabase): void {
  syncWalOf(db.name);
}

/** fdatasync `<file>-wal` (and its folder, once per -wal inode). */
export function syncWalOf(file: string): void {
  const wal = `${path.resolve(file)}-wal`;
  let fd: number;
  try {
    fd = fs.openSync(wal, fs.constants.O_RDONLY);
  } catch (err) {
    // No -wal: the last connection closed and checkpointed it into the database, which the
    // checkpoint synced. Nothing is waiting in a -wal to be synced.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    fs.fdatasyncSync(fd);
    const ino = fs.fstatSync(fd).ino;
    if (dirSynced.get(wal) !== ino) {
      syncFolder(path.dirname(wal));
      dirSynced.set(wal, ino);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a folder, so that names created or removed in it survive a power cut. */
function syncFolder(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    // Some file systems refuse fsync on a folder (EINVAL): they offer nothing stronger.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
  } finally {
    fs.closeSync(fd);
  }
}
