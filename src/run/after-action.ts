/**
 * What happens to a file once it is finished: keep it, delete it, or move it into another
 * folder (keeping its path relative to the watched root). The ready-marker file, when the
 * folder uses one (`a.csv` + `.done` -> `a.csv.done`), follows its data file.
 *
 * Safety rules, whatever the file is called:
 * - nothing is written outside the configured folders: a path with `..` segments, or one that
 *   does not lie inside the watched root, is refused; so is a move through a symbolic link
 *   inside the destination folder;
 * - symbolic links are not followed out of the watched root: a file (or marker) that is a link,
 *   or that lies in a folder reached through a link leading outside the root, is refused;
 * - a move never overwrites: a taken name gets a counter before its extension (`b.csv` ->
 *   `b.1.csv`, `b.2.csv`, ...; `.1` before the extension keeps `*.csv` globs downstream
 *   matching). Claiming a name is atomic: link(2) fails with EEXIST, so two daemons moving two
 *   `b.csv` into the same folder at the same moment both keep their file.
 *
 * Refusals throw AfterActionError before anything was changed.
 *
 * Power cuts: at every moment the file has at least one name on disk. A move makes the new name
 * durable (fsync of the destination folder; for a copy, fsync of the copy's data first) before
 * it removes the old one, and makes the removal durable (fsync of the source folder) before it
 * returns; a delete syncs its folder before it returns. The caller only starts once the outcome
 * that allows the action is on disk (durable-commit.ts); see docs/power-loss.md.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type FileIdentity, identityOf, isVersion } from '../file-identity.js';
import { pidExists } from '../pid-exists.js';
import { beforeBoot } from '../store/fallback/process-identity.js';

/**
 * The brief's shape (`'keep' | 'delete' | { moveTo }`) and the resolved configuration's shape
 * (`{ kind: 'keep' | 'delete' } | { kind: 'move', dir }`, src/config/types.ts) are both accepted.
 */
export type AfterAction =
  | 'keep'
  | 'delete'
  | { moveTo: string }
  | { readonly kind: 'keep' }
  | { readonly kind: 'delete' }
  | { readonly kind: 'move'; readonly dir: string };

export interface AfterActionOptions {
  /** The watched folder the file was found in. */
  root: string;
  /** Suffix of the folder's ready-marker files (".done"), or null. */
  readyMarker: string | null;
  /**
   * The file that was handled (device and inode). The path may hold another file by the time
   * the after-action runs (the producer dropped a new version under the same name): that one
   * was never handled, so it is neither moved nor deleted.
   */
  identity?: FileIdentity;
  /**
   * Runs right before the source name is removed (after a move's copy or link is in place, or
   * before a delete). Tests drop a new file under the name here to make the soak's race
   * deterministic; nothing else uses it.
   */
  beforeRemove?: (file: string) => Promise<void> | void;
}

/** With size and mtime, a file overwritten in place (same inode) is another version too. */
function sameFile(st: fs.Stats, id: FileIdentity | undefined): boolean {
  return id === undefined || isVersion(st, id);
}

/** What the after-action reports when the path holds a newer file than the one handled. */
export const REPLACED = 'keep (the file was replaced after it was handled; the new one is a new version)';

export class AfterActionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AfterActionError';
  }
}

type Normalized = { kind: 'keep' } | { kind: 'delete' } | { kind: 'move'; dir: string };

function normalize(action: AfterAction): Normalized {
  if (action === 'keep' || action === 'delete') return { kind: action };
  if ('moveTo' in action) return { kind: 'move', dir: action.moveTo };
  return action.kind === 'move' ? { kind: 'move', dir: action.dir } : { kind: action.kind };
}

/** How the store records the action before it runs: "keep", "delete", "move:/dir". */
export function afterActionLabel(action: AfterAction): string {
  const a = normalize(action);
  return a.kind === 'move' ? `move:${path.resolve(a.dir)}` : a.kind;
}

const MOVE_TEMP_PREFIX = '.ckpt-move-';
const ASIDE_PREFIX = '.ckpt-aside-';

/**
 * Cleans up after a mover that was killed mid-move, when that process is gone. Returns how many
 * files were removed.
 * - `.ckpt-move-<pid>-<random>.tmp` (in a destination folder): a partial copy; removed.
 * - `.ckpt-aside-<pid>-<random>` (in a watched folder): a source set aside by removeIfSame().
 *   With a second link it is the handled file, already in the destination: removed. With one
 *   link it is a file that was to be put back under its name, which the set-aside name does not
 *   keep: it is left for a person (and returned in `kept`).
 */
export async function removeStaleMoveTemps(dir: string): Promise<number> {
  return (await cleanStaleMoveTemps(dir)).removed;
}

export async function cleanStaleMoveTemps(dir: string): Promise<{ removed: number; kept: string[] }> {
  const out = { removed: 0, kept: [] as string[] };
  let entries: fs.Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const m = /^\.ckpt-(move|aside)-(\d+)-[0-9a-f]+(?:\.tmp)?$/.exec(e.name);
    if (!m || !e.isFile()) continue;
    const p = path.join(e.parentPath ?? dir, e.name);
    const st = await lstatOrNull(p);
    if (st === null) continue;
    // Named (its ctime: the rename or creation) before this boot: its mover is gone, even if
    // a process has that pid again (pids start over after a power cut).
    if (!beforeBoot(st.ctimeMs) && pidExists(Number(m[2]))) continue;
    if (m[1] === 'aside') {
      if (st.nlink < 2) {
        out.kept.push(p);
        continue;
      }
    }
    await unlinkIfThere(p).then(() => out.removed++, () => undefined);
  }
  return out;
}


/** Most counters tried before a move gives up on a name. */
const MAX_SUFFIX = 10_000;

/**
 * Applies `action` to the file. Returns what was done: `keep`, `deleted`,
 * `deleted (already gone)`, or `moved to /done/a/b.1.csv`.
 */
export async function applyAfterAction(action: AfterAction, fileUrl: string, opts: AfterActionOptions): Promise<string> {
  const a = normalize(action);
  if (a.kind === 'keep') return 'keep';
  const src = await checkSource(fileUrl, opts);
  if (src.replaced) return REPLACED;

  if (a.kind === 'delete') {
    await opts.beforeRemove?.(src.file);
    const r = src.exists ? await removeIfSame(src.file, opts.identity) : 'gone';
    if (r === 'replaced') return REPLACED;
    if (src.marker !== null) await unlinkIfThere(src.marker);
    return r === 'gone' ? 'deleted (already gone)' : 'deleted';
  }

  if (!src.exists) throw new AfterActionError(`cannot move ${src.file}: the file is gone`);
  if (typeof a.dir !== 'string' || a.dir === '') throw new AfterActionError('move: the destination folder is empty');
  const destRoot = path.resolve(a.dir);
  const target = path.join(destRoot, src.rel);
  if (!isInside(destRoot, target)) throw new AfterActionError(`refusing to move ${src.file}: ${target} is outside ${destRoot}`);
  await ensureDirInside(destRoot, path.dirname(src.rel));

  const moved = await moveNoClobber(src.file, target, opts.identity, opts.beforeRemove);
  if (moved === null) return REPLACED;
  if (src.marker !== null) {
    try {
      await moveNoClobber(src.marker, `${moved}${opts.readyMarker ?? ''}`);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') {
        throw new AfterActionError(`moved to ${moved}, but its marker ${src.marker} could not follow: ${messageOf(err)}`, { cause: err });
      }
    }
  }
  return `${MOVED}${moved}`;
}

/** How applyAfterAction() reports a move; movedTo() reads it back from the history. */
const MOVED = 'moved to ';

/** Where a move left the file, from what applyAfterAction() reported; null for anything else. */
export function movedTo(done: string): string | null {
  return done.startsWith(MOVED) ? done.slice(MOVED.length) : null;
}

/** The destination folder of a planned move, from its label (afterActionLabel); null for other plans. */
export function plannedMoveDir(label: string): string | null {
  return label.startsWith('move:') ? label.slice('move:'.length) : null;
}

/** Where a move into `destDir` puts a file of the watched folder `root` when that name is free. */
export function moveTarget(destDir: string, root: string, fileUrl: string): string {
  return path.join(path.resolve(destDir), path.relative(path.resolve(root), path.resolve(fileUrl)));
}

interface Source {
  file: string;
  /** Path relative to the root, with no `..` segment. */
  rel: string;
  /** False when the file was already gone. */
  exists: boolean;
  /** The marker's path when the folder uses markers and the marker exists. */
  marker: string | null;
  /** The path holds another file than the one handled. */
  replaced: boolean;
}

async function checkSource(fileUrl: string, opts: AfterActionOptions): Promise<Source> {
  if (typeof fileUrl !== 'string' || fileUrl === '' || fileUrl.includes('\0')) {
    throw new AfterActionError(`refusing an invalid file path: ${JSON.stringify(fileUrl)}`);
  }
  if (fileUrl.split(path.sep).includes('..')) {
    throw new AfterActionError(`refusing ${fileUrl}: the path has ".." segments`);
  }
  const root = path.resolve(opts.root);
  const file = path.resolve(fileUrl);
  const rel = path.relative(root, file);
  if (!isInside(root, file) || rel === '') {
    throw new AfterActionError(`refusing ${file}: it is not inside the watched folder ${root}`);
  }

  const st = await lstatOrNull(file);
  if (st !== null) {
    if (st.isSymbolicLink()) throw new AfterActionError(`refusing ${file}: it is a symbolic link (ckpt does not follow links out of the watched folder)`);
    if (!st.isFile()) throw new AfterActionError(`refusing ${file}: not a regular file`);
  }
  // A folder on the way may be a link leading out of the root: compare the real paths.
  const realRoot = await fsp.realpath(root);
  const realParent = await fsp.realpath(path.dirname(file)).catch((err: unknown) => {
    if (codeOf(err) === 'ENOENT' && st === null) return null; // the whole folder is gone too
    throw err;
  });
  if (realParent !== null && !isInside(realRoot, realParent) && realParent !== realRoot) {
    throw new AfterActionError(`refusing ${file}: its folder resolves to ${realParent}, outside the watched folder ${realRoot}`);
  }

  let marker: string | null = null;
  if (opts.readyMarker !== null && opts.readyMarker !== '') {
    const m = `${file}${opts.readyMarker}`;
    const mst = await lstatOrNull(m);
    if (mst !== null) {
      if (mst.isSymbolicLink()) throw new AfterActionError(`refusing ${m}: the ready marker is a symbolic link`);
      if (!mst.isFile()) throw new AfterActionError(`refusing ${m}: the ready marker is not a regular file`);
      marker = m;
    }
  }
  return { file, rel, exists: st !== null, marker, replaced: st !== null && !sameFile(st, opts.identity) };
}

/** True when `p` is strictly below `dir` (both absolute and normalized). */
function isInside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && rel.split(path.sep)[0] !== '..' && !path.isAbsolute(rel);
}

/**
 * Creates destRoot/relDir one folder at a time, refusing to walk through a symbolic link: a
 * link inside the destination could otherwise carry the file anywhere. The destination folder
 * itself may be a link (the operator chose it).
 */
async function ensureDirInside(destRoot: string, relDir: string): Promise<void> {
  let cur = destRoot;
  const first = await fsp.mkdir(destRoot, { recursive: true });
  if (first !== undefined) {
    // Folders it created: each one's name is made durable in its parent.
    for (let d = destRoot; ; d = path.dirname(d)) {
      await syncFolder(path.dirname(d));
      if (d === first || path.dirname(d) === d) break;
    }
  }
  if (relDir === '.' || relDir === '') return;
  for (const seg of relDir.split(path.sep)) {
    cur = path.join(cur, seg);
    for (let tries = 0; ; tries++) {
      const st = await lstatOrNull(cur);
      if (st?.isSymbolicLink()) throw new AfterActionError(`refusing to move through ${cur}: it is a symbolic link`);
      if (st !== null) {
        if (!st.isDirectory()) throw new AfterActionError(`cannot move into ${cur}: it exists and is not a folder`);
        break;
      }
      try {
        await fsp.mkdir(cur);
        // The new folder's name must be on disk before a file is linked into it.
        await syncFolder(path.dirname(cur));
        break;
      } catch (err) {
        // Another mover created it in between: look again (once).
        if (codeOf(err) !== 'EEXIST' || tries > 0) throw err;
      }
    }
  }
}

/** `b.csv` -> `b.1.csv`; `.hidden` -> `.hidden.1`; `b` -> `b.1`. */
export function suffixedName(target: string, n: number): string {
  if (n === 0) return target;
  const dir = path.dirname(target);
  const base = path.basename(target);
  const ext = path.extname(base);
  const stem = base.slice(0, base.length - ext.length);
  return path.join(dir, `${stem}.${n}${ext}`);
}

/** Errors of link(2) that mean "not across these file systems / not on this one": copy instead. */
const LINK_UNSUPPORTED = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS']);

/**
 * Moves `src` to `target`, or to the first free suffixed name; returns the name used. Never
 * overwrites. Same file system: link + unlink. Otherwise (EXDEV; or a file system without
 * hard links): copy to a temporary name in the destination folder, then link that to the free
 * name, so a crash mid-copy never leaves a partial file under a real name.
 */
async function moveNoClobber(src: string, target: string, identity?: FileIdentity, beforeRemove?: (file: string) => Promise<void> | void): Promise<string | null> {
  for (let n = 0; n < MAX_SUFFIX; n++) {
    const dst = suffixedName(target, n);
    try {
      await fsp.link(src, dst);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'EEXIST') continue;
      if (code !== undefined && LINK_UNSUPPORTED.has(code)) return copyNoClobber(src, target, n, identity, beforeRemove);
      throw nameError(err, dst);
    }
    // link(2) names whatever the path held at that instant: make sure it is the handled file.
    const linked = await fsp.lstat(dst);
    if (!sameFile(linked, identity)) {
      await unlinkIfThere(dst);
      return null;
    }
    // The new name is on disk before the old one goes (a power cut in between leaves both).
    await syncFolder(path.dirname(dst));
    await beforeRemove?.(src);
    // From here on the source is removed only while it is the inode just linked.
    await removeSource(src, dst, identityOf(linked));
    return dst;
  }
  throw new AfterActionError(`cannot move ${src}: ${target} and ${MAX_SUFFIX - 1} suffixed names are all taken`);
}

/**
 * moveNoClobber across file systems: the handled file is copied to a temporary name in the
 * destination folder, that copy is given the first free name, then the source is removed.
 */
async function copyNoClobber(
  src: string,
  target: string,
  firstN: number,
  identity?: FileIdentity,
  beforeRemove?: (file: string) => Promise<void> | void,
): Promise<string | null> {
  // The pid in the name lets removeStaleMoveTemps() tell a dead mover's partial copy from a live one's.
  const tmp = path.join(path.dirname(target), `${MOVE_TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  const st = await copyToTemp(src, tmp, identity);
  if (st === null) return null;
  try {
    // Keep the data's mtime: downstream tools often sort or select by it.
    await fsp.utimes(tmp, st.atime, st.mtime).catch(() => undefined);
    const dst = await nameCopy(src, tmp, target, firstN);
    await beforeRemove?.(src);
    await removeSource(src, dst, identityOf(st));
    return dst;
  } finally {
    await unlinkIfThere(tmp);
  }
}

/**
 * Copies `src` to the new file `tmp`, data synced; returns the source's stat, or null (nothing
 * copied) when `src` is no longer the handled file.
 */
async function copyToTemp(src: string, tmp: string, identity?: FileIdentity): Promise<fs.Stats | null> {
  // Copy from an open descriptor whose identity was checked: a file dropped under the same name
  // while the copy runs is not the one copied, nor the one removed afterwards.
  const fh = await fsp.open(src, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!sameFile(st, identity)) return null;
    await pipeline(fh.createReadStream({ autoClose: false }), fs.createWriteStream(tmp, { flags: 'wx', mode: st.mode & 0o777 }));
    // The copy's data is on disk before any name points at it, or a power cut could leave the
    // real name holding a short or empty file while the source is already gone.
    await syncFile(tmp);
    return st;
  } catch (err) {
    await unlinkIfThere(tmp);
    throw err;
  } finally {
    await fh.close();
  }
}

/** Gives the synced copy `tmp` the first free name from `target`'s suffix `firstN` on, never overwriting; returns that name. */
async function nameCopy(src: string, tmp: string, target: string, firstN: number): Promise<string> {
  let linkable = true;
  for (let n = firstN; n < MAX_SUFFIX; n++) {
    const dst = suffixedName(target, n);
    try {
      if (linkable) {
        await fsp.link(tmp, dst);
      } else {
        await fsp.copyFile(tmp, dst, fs.constants.COPYFILE_EXCL);
      }
    } catch (err) {
      const code = codeOf(err);
      if (code === 'EEXIST') continue;
      if (linkable && code !== undefined && LINK_UNSUPPORTED.has(code)) {
        // The destination file system has no hard links: copy under the final name with
        // COPYFILE_EXCL (still never overwrites; a crash mid-copy can leave a partial file).
        linkable = false;
        n--; // try this same name again, by copying
        continue;
      }
      throw nameError(err, dst);
    }
    if (!linkable) await syncFile(dst);
    await syncFolder(path.dirname(dst));
    return dst;
  }
  throw new AfterActionError(`cannot move ${src}: ${target} and ${MAX_SUFFIX - 1} suffixed names are all taken`);
}

/**
 * The copy (or link) is in place: remove the original, or undo the copy so the file is not in
 * both. Only the handled file is removed: a new file dropped under the name meanwhile stays,
 * for its own turn (see removeIfSame).
 */
async function removeSource(src: string, dst: string, identity: FileIdentity): Promise<void> {
  try {
    await removeIfSame(src, identity);
  } catch (err) {
    await unlinkIfThere(dst);
    throw new AfterActionError(`could not remove ${src} after copying it to ${dst} (copy undone): ${messageOf(err)}`, { cause: err });
  }
}

/**
 * Removes `file` if it is the file `identity` names. There is no "unlink this inode" system
 * call, and a look followed by unlink(2) deletes whatever the name holds by then: the soak lost
 * contents dropped under the same name in between (an overwritten file ended in no folder).
 * So the name is first renamed aside to a unique hidden name in the same folder (rename(2) is
 * atomic: exactly the file the name held at that instant moves, and a file dropped afterwards
 * lands under the free name), the moved file is checked, and a file that is not the handled
 * one is put back with link(2), which never overwrites a file dropped under the name meanwhile
 * (that newer file would have replaced it anyway).
 *
 * 'removed': it was the handled file. 'gone': the name was already free. 'replaced': the name
 * held another file, which stays.
 *
 * A mover killed between the rename and the unlink leaves `.ckpt-aside-<pid>-<random>`;
 * cleanStaleMoveTemps() removes it when its data also lives in the destination (two links).
 *
 * Whatever it changed is on disk (fsync of the folder) before it returns.
 */
export async function removeIfSame(file: string, identity: FileIdentity | undefined): Promise<'removed' | 'gone' | 'replaced'> {
  const r = await removeIfSameUnsynced(file, identity);
  if (r !== 'gone') await syncFolder(path.dirname(file));
  return r;
}

async function removeIfSameUnsynced(file: string, identity: FileIdentity | undefined): Promise<'removed' | 'gone' | 'replaced'> {
  if (identity === undefined) {
    try {
      await fsp.unlink(file);
      return 'removed';
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return 'gone';
      throw err;
    }
  }
  const aside = path.join(path.dirname(file), `${ASIDE_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await fsp.rename(file, aside);
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return 'gone';
    throw err;
  }
  let st: fs.Stats;
  try {
    st = await fsp.lstat(aside);
  } catch (err) {
    // Nobody else uses the name: only an outside hand can have removed it.
    if (codeOf(err) === 'ENOENT') return 'gone';
    throw err;
  }
  if (sameFile(st, identity)) {
    await unlinkIfThere(aside);
    return 'removed';
  }
  try {
    await fsp.link(aside, file);
  } catch (err) {
    // EEXIST: a newer file was dropped under the name while this one was aside; the sender's
    // rename would have replaced it just the same.
    if (codeOf(err) !== 'EEXIST') throw err;
  }
  await unlinkIfThere(aside);
  return 'replaced';
}

/**
 * fsync a folder: the names created or removed in it survive a power cut. A file system that
 * refuses fsync on a folder (EINVAL) offers nothing stronger, and is let be.
 */
async function syncFolder(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fh.sync();
  } catch (err) {
    if (codeOf(err) !== 'EINVAL') throw err;
  } finally {
    await fh.close();
  }
}

/** fdatasync a file's data (a copy, before a name points at it). */
async function syncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, fs.constants.O_RDONLY);
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

function nameError(err: unknown, dst: string): unknown {
  if (codeOf(err) === 'ENAMETOOLONG') return new AfterActionError(`cannot move to ${dst}: the name is too long`, { cause: err });
  return err;
}

async function lstatOrNull(p: string): Promise<fs.Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return null;
    throw err;
  }
}

async function unlinkIfThere(p: string): Promise<void> {
  try {
    await fsp.unlink(p);
  } catch (err) {
    if (codeOf(err) !== 'ENOENT') throw err;
  }
}

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
