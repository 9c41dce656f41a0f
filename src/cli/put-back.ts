/**
 * Bringing a file back to the path it was found at, from where an after-action moved it, for
 * `ckpt retry`. In two steps around the requeue, so that the file is never in neither place:
 *
 *   place(): a second name at the original path (link(2); a copy when the folders are on two
 *            file systems). link(2) never overwrites: a taken path is refused.
 *   the requeue commits
 *   finish(): the name in the after-action's folder goes (only while it is the same file);
 *   or undo(): the requeue did not happen, the new name at the original path goes.
 *
 * Killed between the two, the file is in both places: as dead with its after-action recorded,
 * the daemon's next look at the inbox finishes that move again (src/run/runner.ts
 * finishAfterAction); as pending, the copy in the after-action's folder is left over.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type FileIdentity, identityOf } from '../file-identity.js';
import { removeIfSame } from '../run/after-action.js';

export interface Placed {
  from: string;
  to: string;
  /** The file at `from`, and the one now at `to` (the same inode unless copied). */
  fromId: FileIdentity;
  toId: FileIdentity;
  /** The ready marker brought back with it, if the folder uses markers and it had one. */
  marker: Placed | null;
}

/** Errors of link(2) that mean "not across these file systems": copy instead. */
const LINK_UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS']);

/** 'taken': something is at `to` already (nothing was changed). */
export async function place(from: string, to: string, readyMarker: string | null): Promise<Placed | 'taken'> {
  const fromSt = await fsp.lstat(from);
  await fsp.mkdir(path.dirname(to), { recursive: true });
  try {
    await fsp.link(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return 'taken';
    if (code === undefined || !LINK_UNSUPPORTED.has(code)) throw err;
    if ((await copyNoClobber(from, to, fromSt)) === 'taken') return 'taken';
  }
  const placed: Placed = { from, to, fromId: identityOf(fromSt), toId: identityOf(await fsp.lstat(to)), marker: null };
  if (readyMarker !== null && readyMarker !== '' && fs.existsSync(`${from}${readyMarker}`)) {
    const m = await place(`${from}${readyMarker}`, `${to}${readyMarker}`, null).catch(() => null);
    if (m !== null && m !== 'taken') placed.marker = m;
  }
  return placed;
}

/** Copy through a temporary name beside `to`, then link(2) it there: never a partial file under the real name. */
async function copyNoClobber(from: string, to: string, st: fs.Stats): Promise<'ok' | 'taken'> {
  const tmp = path.join(path.dirname(to), `.ckpt-move-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fsp.copyFile(from, tmp, fs.constants.COPYFILE_EXCL);
    await fsp.utimes(tmp, st.atime, st.mtime);
    await fsp.link(tmp, to);
    return 'ok';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'taken';
    throw err;
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
}

/** The requeue is committed: the file leaves the after-action's folder. */
export async function finish(p: Placed): Promise<void> {
  await removeIfSame(p.from, p.fromId);
  if (p.marker) await finish(p.marker);
}

/** The requeue did not happen: the file stays where the after-action put it. */
export async function undo(p: Placed): Promise<void> {
  await removeIfSame(p.to, p.toId);
  if (p.marker) await undo(p.marker);
}
