/**
 * `ckpt validate`'s folder check against the file system type: real folders, and a mount table
 * of the test's own that puts them on NFS (the way test/unit/mounts.test.ts reads a table), since
 * the suite has no network share to mount.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { folderCheck, type FolderUse } from '../../src/cli/commands/validate-checks.js';
import type { WatchConfig } from '../../src/config/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const { R_OK, W_OK, X_OK } = fs.constants;

/** A folder and a mount table in which it is the mount point of `fsType`. */
function mounted(fsType: string): { dir: string; mountsFile: string } {
  const root = tmpDir('ckpt-validate-');
  const dir = path.join(root, 'share');
  fs.mkdirSync(dir);
  const mountsFile = path.join(root, 'mounts');
  fs.writeFileSync(mountsFile, `/dev/sda1 / ext4 rw 0 0\nnas:/export ${fs.realpathSync(dir)} ${fsType} rw 0 0\n`);
  return { dir, mountsFile };
}

const watch = (dir: string, poll: WatchConfig['poll']): WatchConfig => ({ dir, include: [], exclude: [], fileType: 'x', poll, readyMarker: null, recursive: false, readiness: 'auto', allowOtherLedgers: false });

describe('folderCheck and the file system type', () => {
  it('the database folder on NFS: FAIL (WAL locks do not hold there); on ext4: ok', () => {
    const nfs = mounted('nfs4');
    const use: FolderUse = { name: 'database folder', dir: nfs.dir, access: W_OK | X_OK, fs: 'local', created: true };
    const c = folderCheck(use, { mountsFile: nfs.mountsFile });
    expect(c.level).toBe('fail');
    expect(c.message).toBe(`${nfs.dir} (writable, nfs4, a network file system): SQLite's WAL locks do not hold on a network file system; use a local disk`);
    const local = mounted('ext4');
    expect(folderCheck({ ...use, dir: local.dir }, { mountsFile: local.mountsFile })).toEqual({ name: 'database folder', level: 'ok', message: `${local.dir} (writable, ext4)` });
  });

  it('a watched folder on NFS: polled with "auto" (ok), a warning with "poll": false', () => {
    const nfs = mounted('nfs');
    const use = (poll: WatchConfig['poll']): FolderUse => ({ name: 'watch[0].dir', dir: nfs.dir, access: R_OK | X_OK, fs: watch(nfs.dir, poll), created: false });
    const auto = folderCheck(use('auto'), { mountsFile: nfs.mountsFile });
    expect(auto).toEqual({ name: 'watch[0].dir', level: 'ok', message: `${nfs.dir} (readable, nfs, a network file system), polled` });
    const off = folderCheck(use(false), { mountsFile: nfs.mountsFile });
    expect(off.level).toBe('warn');
    expect(off.message).toMatch(/"poll": false, but inotify does not see files other hosts write there; set "poll": "auto"$/);
  });
});
