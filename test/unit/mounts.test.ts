/**
 * Mount detection. The fake tables below are test DATA in the kernel's format, read from a real
 * file; the file system itself is never faked. The last tests read the real /proc/self/mounts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_MOUNTS_FILE,
  NETWORK_FS_TYPES,
  fileSystemOf,
  findMount,
  isNetworkFileSystem,
  parseMounts,
  pollDecision,
  unescapeMountField,
} from '../../src/mounts.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

function tableFile(text: string): string {
  const file = path.join(tmpDir('ckpt-mounts-'), 'mounts');
  fs.writeFileSync(file, text);
  return file;
}

const TABLE = [
  '/dev/vda / ext4 rw,relatime 0 0',
  'proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0',
  'nas.local:/export/ingest /mnt/nfs nfs4 rw,relatime,vers=4.2,rsize=1048576,addr=10.0.0.5 0 0',
  '//fileserver/drop /mnt/smb cifs rw,relatime,vers=3.1.1 0 0',
  '/dev/vdb /mnt/nfs/local-overlay xfs rw 0 0',
  '/dev/vdc /mnt/my\\040disk ext4 rw 0 0',
  'user@host:/data /home/me/remote fuse.sshfs rw,nosuid 0 0',
  '',
].join('\n');

describe('parsing the mount table', () => {
  it('reads source, mount point and type, undoing octal escapes', () => {
    const entries = parseMounts(TABLE);
    expect(entries).toHaveLength(7);
    expect(entries[2]).toEqual({ source: 'nas.local:/export/ingest', mountPoint: '/mnt/nfs', fsType: 'nfs4' });
    expect(entries[5]).toEqual({ source: '/dev/vdc', mountPoint: '/mnt/my disk', fsType: 'ext4' });
  });

  it('unescapes space, tab, newline and backslash', () => {
    expect(unescapeMountField('/a\\040b\\011c\\012d\\134e')).toBe('/a b\tc\nd\\e');
    expect(unescapeMountField('/plain')).toBe('/plain');
  });

  it('skips lines it cannot read', () => {
    expect(parseMounts('garbage\n\n/dev/x /y ext4 rw 0 0\n')).toEqual([{ source: '/dev/x', mountPoint: '/y', fsType: 'ext4' }]);
  });

  it('takes the longest mount point, whole path segments only, and the last of equal ones', () => {
    const entries = parseMounts(TABLE);
    expect(findMount(entries, '/mnt/nfs/a/b.csv')?.fsType).toBe('nfs4');
    expect(findMount(entries, '/mnt/nfs')?.fsType).toBe('nfs4');
    expect(findMount(entries, '/mnt/nfs2/a')?.fsType).toBe('ext4');
    expect(findMount(entries, '/mnt/nfs/local-overlay/x')?.fsType).toBe('xfs');
    const stacked = parseMounts('/dev/a / ext4 rw 0 0\nsrv:/x /data nfs rw 0 0\n/dev/b /data xfs rw 0 0\n');
    expect(findMount(stacked, '/data/f')?.fsType).toBe('xfs');
    expect(findMount([], '/x')).toBeNull();
  });
});

describe('fileSystemOf / isNetworkFileSystem with a given table', () => {
  it('detects NFS, CIFS and sshfs, and not the local disks', () => {
    const mountsFile = tableFile(TABLE);
    expect(fileSystemOf('/mnt/nfs/inbox/a.csv', { mountsFile })).toEqual({
      fsType: 'nfs4',
      mountPoint: '/mnt/nfs',
      source: 'nas.local:/export/ingest',
    });
    expect(isNetworkFileSystem('/mnt/nfs/inbox', { mountsFile })).toBe(true);
    expect(isNetworkFileSystem('/mnt/smb/drop', { mountsFile })).toBe(true);
    expect(isNetworkFileSystem('/home/me/remote/x', { mountsFile })).toBe(true);
    expect(isNetworkFileSystem('/mnt/nfs/local-overlay/x', { mountsFile })).toBe(false);
    expect(isNetworkFileSystem('/mnt/my disk/x', { mountsFile })).toBe(false);
    expect(isNetworkFileSystem('/srv', { mountsFile })).toBe(false);
  });

  it('follows symbolic links: a link into a network mount counts as network', () => {
    const root = fs.realpathSync(tmpDir('ckpt-mounts-'));
    const share = path.join(root, 'share point');
    fs.mkdirSync(share);
    fs.symlinkSync(share, path.join(root, 'link'));
    const escaped = share.replace(/ /g, '\\040');
    const mountsFile = tableFile(`/dev/vda / ext4 rw 0 0\nsrv:/x ${escaped} nfs rw 0 0\n`);
    expect(fileSystemOf(path.join(root, 'link', 'inbox'), { mountsFile })).toEqual({ fsType: 'nfs', mountPoint: share, source: 'srv:/x' });
    expect(isNetworkFileSystem(path.join(root, 'elsewhere'), { mountsFile })).toBe(false);
  });

  it('a path that does not exist yet is judged by its nearest existing ancestor', () => {
    const mountsFile = tableFile(TABLE);
    expect(fileSystemOf('/mnt/nfs/not/yet/created', { mountsFile }).fsType).toBe('nfs4');
  });

  it('an unreadable table gives "unknown", which is not a network file system', () => {
    const mountsFile = path.join(tmpDir('ckpt-mounts-'), 'missing');
    expect(fileSystemOf('/x', { mountsFile })).toEqual({ fsType: 'unknown', mountPoint: '', source: '' });
    expect(isNetworkFileSystem('/x', { mountsFile })).toBe(false);
  });

  it('every listed type is detected', () => {
    for (const type of NETWORK_FS_TYPES) {
      const mountsFile = tableFile(`/dev/vda / ext4 rw 0 0\nsrc /mnt/x ${type} rw 0 0\n`);
      expect(isNetworkFileSystem('/mnt/x/y', { mountsFile })).toBe(true);
    }
  });
});

describe('the real mount table', () => {
  it('finds the local file system of the temp folder', () => {
    const dir = tmpDir('ckpt-mounts-');
    const fsInfo = fileSystemOf(dir);
    expect(DEFAULT_MOUNTS_FILE).toBe('/proc/self/mounts');
    expect(fsInfo.fsType).not.toBe('unknown');
    const real = fs.realpathSync(dir);
    expect(fsInfo.mountPoint === '/' || real === fsInfo.mountPoint || real.startsWith(`${fsInfo.mountPoint}/`)).toBe(true);
    expect(isNetworkFileSystem(dir)).toBe(false);
    expect(isNetworkFileSystem(path.join(os.tmpdir(), 'does-not-exist', 'x'))).toBe(false);
  });

  it('/proc is proc', () => {
    expect(fileSystemOf('/proc/self').fsType).toBe('proc');
  });
});

describe('pollDecision (the watcher and the runner decide `poll` this one way)', () => {
  it('true and false stand; auto polls exactly on a network file system of the mount table', () => {
    const root = tmpDir('ckpt-poll-');
    const nfs = path.join(root, 'nfs');
    fs.mkdirSync(nfs);
    const table = tableFile(`/dev/vda / ext4 rw 0 0\nserver:/export ${nfs} nfs4 rw 0 0\n`);
    const onNetwork = (p: string) => isNetworkFileSystem(p, { mountsFile: table });
    expect(pollDecision(true, root, onNetwork)).toEqual({ poll: true });
    expect(pollDecision(false, nfs, onNetwork)).toEqual({ poll: false });
    expect(pollDecision('auto', path.join(nfs, 'in'), onNetwork)).toEqual({ poll: true });
    expect(pollDecision('auto', root, onNetwork)).toEqual({ poll: false });
  });

  it('auto that cannot be decided is unknown (each caller picks its safe side), never a throw', () => {
    const err = new Error('mount table unreadable');
    const d = pollDecision('auto', '/x', () => {
      throw err;
    });
    expect(d).toEqual({ unknown: err });
  });
});
