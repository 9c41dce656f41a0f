import fs from 'node:fs';
import path from 'node:path';
import type { SqliteDatabase } from '../open-database.js';
import { syncDir } from './journal.js';

/**
 * A periodic copy of the database beside it (`<db>.fallback/snapshot.db`), for the corruption
 * that leaves nothing to salvage: a file truncated to half keeps about half its rows, random
 * bytes none (measured, see scripts/corruption-survival.ts). Salvage then takes every row it
 * could not read from the file itself from the snapshot: a file completed before the snapshot
 * is not run again.
 *
 * Made with SQLite's online backup in ONE step (every page at once): a backup that yields
 * between steps starts over whenever another process writes, and with two busy daemons it
 * might never finish. Measured on a 13 MB database (20,000 files): 25-33 ms of CPU, 70-200 ms
 * wall on a loaded 2-core machine; VACUUM INTO took 4x the CPU. The copy is written under a
 * temporary name and renamed over the old one, so a crash mid-copy leaves the old snapshot.
 */
export const SNAPSHOT_NAME = 'snapshot.db';

export async function takeSnapshot(db: SqliteDatabase, dir: string, fileMode = 0o600): Promise<{ file: string; bytes: number; ms: number }> {
  const t0 = Date.now();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, SNAPSHOT_NAME);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  // Created first so it gets ckpt's mode, not the umask's.
  fs.closeSync(fs.openSync(tmp, 'w', fileMode));
  try {
    await db.backup(tmp, { progress: () => 1 << 30 });
    const fd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    syncDir(dir);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return { file, bytes: fs.statSync(file).size, ms: Date.now() - t0 };
}

export function snapshotAge(dir: string, now: number): number | null {
  try {
    return now - fs.statSync(path.join(dir, SNAPSHOT_NAME)).mtimeMs;
  } catch {
    return null;
  }
}
