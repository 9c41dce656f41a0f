/**
 * Which file system a path lives on, from the kernel's mount table (/proc/self/mounts).
 *
 * Two decisions hang on it: the watcher polls a folder on a network file system (inotify
 * only reports changes made through this kernel, so files another machine writes to an NFS
 * or SMB share never produce an event), and the store refuses to put a SQLite WAL database
 * on one (WAL needs shared memory and working locks that network file systems do not give).
 */
import fs from 'node:fs';
import path from 'node:path';

export const DEFAULT_MOUNTS_FILE = '/proc/self/mounts';

/**
 * File system types on which files can change without this kernel seeing the write, so that
 * inotify misses them (and SQLite's WAL locking cannot be trusted):
 * - nfs, nfs4, cifs, smb3, smbfs, ncpfs, afs: classic network shares written by other hosts;
 * - ceph, glusterfs, lustre, gpfs, beegfs, ocfs2, gfs2: cluster file systems, other nodes write;
 * - 9p, virtiofs, vboxsf, fuse.vmhgfs-fuse: folders shared from a VM's host (WSL2's /mnt/c is
 *   9p), written by the host OS behind the guest kernel's back;
 * - fuse.sshfs, fuse.rclone, fuse.s3fs, fuse.gcsfuse, fuse.glusterfs, fuse.ceph: FUSE clients of
 *   remote storage.
 * Plain `fuse` is not listed: it is also used by local file systems and cannot be told apart.
 */
export const NETWORK_FS_TYPES: ReadonlySet<string> = new Set([
  'nfs',
  'nfs4',
  'cifs',
  'smb3',
  'smbfs',
  'ncpfs',
  'afs',
  'ceph',
  'glusterfs',
  'lustre',
  'gpfs',
  'beegfs',
  'ocfs2',
  'gfs2',
  '9p',
  'virtiofs',
  'vboxsf',
  'fuse.vmhgfs-fuse',
  'fuse.sshfs',
  'fuse.rclone',
  'fuse.s3fs',
  'fuse.gcsfuse',
  'fuse.glusterfs',
  'fuse.ceph',
]);

export interface MountEntry {
  source: string;
  mountPoint: string;
  fsType: string;
}

export interface FileSystemInfo {
  /** `unknown` when the mount table could not be read (not Linux) or has no matching entry. */
  fsType: string;
  mountPoint: string;
  source: string;
}

export interface MountOptions {
  /** The mount table to read; tests pass a file holding their own table. */
  mountsFile?: string;
}

/** Undoes the kernel's octal escapes in mount table fields: `\040` space, `\011` tab, `\012` newline, `\134` backslash. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Parses the text of /proc/self/mounts (fstab format); malformed lines are skipped. */
export function parseMounts(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 3 || fields[0]?.startsWith('#')) continue;
    const [source, mountPoint, fsType] = fields as [string, string, string];
    entries.push({ source: unescapeMountField(source), mountPoint: unescapeMountField(mountPoint), fsType });
  }
  return entries;
}

/** The realpath of `p`, or of its nearest existing ancestor joined with the missing rest. */
function realpathOfNearest(p: string): string {
  let cur = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest);
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return path.resolve(p);
      rest.unshift(path.basename(cur));
      cur = parent;
    }
  }
}

function isUnder(p: string, mountPoint: string): boolean {
  if (mountPoint === '/') return p.startsWith('/');
  return p === mountPoint || p.startsWith(`${mountPoint}/`);
}

/** Picks the entry holding `realPath` from a parsed table: the longest mount point wins, and of equal ones the last (a later mount hides an earlier one on the same point). */
export function findMount(entries: readonly MountEntry[], realPath: string): MountEntry | null {
  let best: MountEntry | null = null;
  for (const e of entries) {
    if (!isUnder(realPath, e.mountPoint)) continue;
    if (best === null || e.mountPoint.length >= best.mountPoint.length) best = e;
  }
  return best;
}

const UNKNOWN: FileSystemInfo = Object.freeze({ fsType: 'unknown', mountPoint: '', source: '' });

/**
 * The file system holding `p` (which need not exist yet: its nearest existing ancestor is
 * used). Symbolic links are followed, so a link into an NFS mount counts as NFS.
 */
export function fileSystemOf(p: string, opts: MountOptions = {}): FileSystemInfo {
  let text: string;
  try {
    text = fs.readFileSync(opts.mountsFile ?? DEFAULT_MOUNTS_FILE, 'utf8');
  } catch {
    return { ...UNKNOWN };
  }
  const found = findMount(parseMounts(text), realpathOfNearest(p));
  return found === null ? { ...UNKNOWN } : { fsType: found.fsType, mountPoint: found.mountPoint, source: found.source };
}

/** True when `p` is on one of NETWORK_FS_TYPES. False when the mount table cannot be read. */
export function isNetworkFileSystem(p: string, opts: MountOptions = {}): boolean {
  return NETWORK_FS_TYPES.has(fileSystemOf(p, opts).fsType);
}

/**
 * A watch folder's `poll` setting decided, the one way for the watcher and the runner: `true`
 * and `false` stand, `'auto'` polls on a network file system (inotify misses other hosts'
 * writes there, and a hung server must not block the event loop). `{ unknown }` when `'auto'`
 * cannot be decided: each caller then takes the side that is safe for what it does with the
 * answer, and says so in its log line.
 */
export function pollDecision(poll: boolean | 'auto', dir: string, isNetworkFs: (p: string) => boolean = isNetworkFileSystem): { poll: boolean } | { unknown: unknown } {
  if (poll !== 'auto') return { poll };
  try {
    return { poll: isNetworkFs(dir) };
  } catch (err) {
    return { unknown: err };
  }
}
