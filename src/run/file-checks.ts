/**
 * The runner's look at a file on disk: before the handler (still there, a regular file,
 * readable, not reached through a symbolic link out of its watched folder) and after it (did it
 * change while it was handled?).
 *
 * Two ways to ask, same system calls, same answers:
 * - in line (synchronous) for folders on a local file system. These are a few separate calls
 *   per file, and one call through libuv's thread pool cost 43-60 us of CPU here against 6-10
 *   us in line (lstat, 20,000 files, 2 cores, loaded; scripts/bench/findings.md). In the
 *   pipeline's CPU profile the runner's checks through the pool were most of runner.ts's 49%.
 * - through the thread pool for polled (network) folders: a hung NFS server would block the
 *   event loop in a synchronous call, and with it every other file and the lease renewals.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DiscoveredFile } from '../store/types.js';
import { type FileIdentity, fingerprintOf, identityOf } from '../file-identity.js';

export interface FileProblem {
  permanent: boolean;
  reason: 'vanished' | 'unreadable' | 'not_a_file' | 'outside_root';
  error: string;
}

/** The file the handler is about to read: its fingerprint and (for after-actions) identity. */
export interface CheckedFile {
  fingerprint: string;
  identity: FileIdentity;
}

export type CheckResult = FileProblem | CheckedFile;

/** The file's new identity when it changed while it was handled. */
export type ChangedFile = Omit<DiscoveredFile, 'fileType'>;

/**
 * Before running the handler: is the file still there, a regular file, and readable? Returns
 * its fingerprint then (the content the handler is about to read). In line: local folders only.
 */
export function checkFileInLine(fileUrl: string, root: string | undefined): CheckResult {
  if (mayLeaveRoot(fileUrl, root)) {
    try {
      const outside = outsideRoot(fs.realpathSync.native(root), fs.realpathSync.native(path.dirname(fileUrl)));
      if (outside) return outside;
    } catch {
      // A folder on the way is gone: the lstat below says "vanished".
    }
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(fileUrl);
  } catch (err) {
    return lstatProblem(err);
  }
  const notFile = notAFile(st);
  if (notFile) return notFile;
  try {
    fs.accessSync(fileUrl, fs.constants.R_OK);
  } catch (err) {
    return unreadable(err);
  }
  return checked(st);
}

/** The same checks through the thread pool (polled, i.e. network, folders). */
export async function checkFileAsync(fileUrl: string, root: string | undefined): Promise<CheckResult> {
  if (mayLeaveRoot(fileUrl, root)) {
    try {
      const [realRoot, realDir] = await Promise.all([fs.promises.realpath(root), fs.promises.realpath(path.dirname(fileUrl))]);
      const outside = outsideRoot(realRoot, realDir);
      if (outside) return outside;
    } catch {
      // A folder on the way is gone: the lstat below says "vanished".
    }
  }
  let st: fs.Stats;
  try {
    st = await lstat(fileUrl);
  } catch (err) {
    return lstatProblem(err);
  }
  const notFile = notAFile(st);
  if (notFile) return notFile;
  try {
    await access(fileUrl, fs.constants.R_OK);
  } catch (err) {
    return unreadable(err);
  }
  return checked(st);
}

/** The file's current identity if it changed since the handler started, else null. In line. */
export function changedInLine(fileUrl: string, readFingerprint: string): ChangedFile | null {
  try {
    return changedFrom(fileUrl, fs.lstatSync(fileUrl), readFingerprint);
  } catch {
    return null;
  }
}

/** The same through the thread pool (polled folders). */
export async function changedAsync(fileUrl: string, readFingerprint: string): Promise<ChangedFile | null> {
  try {
    return changedFrom(fileUrl, await lstat(fileUrl), readFingerprint);
  } catch {
    return null;
  }
}

/** The fingerprint, and the same identity as data (parseFingerprint of it gives the same). */
function checked(st: fs.Stats): CheckedFile {
  return { fingerprint: fingerprintOf(st), identity: identityOf(st) };
}

function changedFrom(fileUrl: string, st: fs.Stats, readFingerprint: string): ChangedFile | null {
  const fp = fingerprintOf(st);
  if (fp === readFingerprint || !st.isFile()) return null;
  return { fileUrl, mtimeMs: st.mtimeMs, size: st.size, fingerprint: fp };
}

/**
 * Only a file in a sub-folder can be reached through a link out of the root: for a file right
 * in the root, its folder IS the root and the two real paths are the same by construction. The
 * two realpath calls were 10% of the pipeline's CPU (all its files are in the root).
 */
function mayLeaveRoot(fileUrl: string, root: string | undefined): root is string {
  return root !== undefined && path.dirname(fileUrl) !== root;
}

/**
 * A folder on the way may have been swapped for a link leading out of the watched root since
 * the file was found: symbolic links are never followed out of it.
 */
function outsideRoot(realRoot: string, realDir: string): FileProblem | null {
  const rel = path.relative(realRoot, realDir);
  if (!rel.startsWith('..') && !path.isAbsolute(rel)) return null;
  return { permanent: true, reason: 'outside_root', error: `refused: the path now leads outside the watched folder (${realDir}) through a symbolic link` };
}

function lstatProblem(err: unknown): FileProblem {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    // Settled with a reason, not retried forever: it is not coming back under this name.
    return { permanent: true, reason: 'vanished', error: 'file vanished before it was handled' };
  }
  return { permanent: false, reason: 'unreadable', error: `cannot stat file: ${(err as Error).message}` };
}

function notAFile(st: fs.Stats): FileProblem | null {
  if (st.isFile()) return null;
  return { permanent: true, reason: 'not_a_file', error: `not a regular file (${st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : 'a special file'})` };
}

function unreadable(err: unknown): FileProblem {
  return { permanent: false, reason: 'unreadable', error: `cannot read file: ${(err as Error).message}` };
}

/**
 * fs.lstat and fs.access through their callback API: the same system calls and the same errors
 * as fs.promises, for about half the CPU (measured here under load: lstat 22-29 us a call
 * against 57-62 us, access 6-12 us against 21-27 us; scripts/bench/findings.md).
 */
function lstat(p: string): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.lstat(p, (err, st) => (err ? reject(err) : resolve(st))));
}

function access(p: string, mode: number): Promise<void> {
  return new Promise((resolve, reject) => fs.access(p, mode, (err) => (err ? reject(err) : resolve())));
}
