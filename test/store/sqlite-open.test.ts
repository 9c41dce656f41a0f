/**
 * openDatabase(): pragmas, file modes, migrations under a race, errors for bad files, and the
 * -wal file staying bounded while the sqlite3 shell holds a read transaction open.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { openDatabase } from '../../src/store/open-database.js';
import { StoreUnavailableError, classifySqliteError } from '../../src/store/sqlite-errors.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { killChildren, runTs } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killChildren();
  cleanupTmpDirs();
});

describe('openDatabase', () => {
  it('sets WAL, synchronous=NORMAL, busy timeout, size limits, and creates the file 0600', () => {
    const file = path.join(tmpDir(), 'a.db');
    const db = openDatabase(file, { busyTimeoutMs: 1234 });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('journal_size_limit', { simple: true })).toBe(64 * 1024 * 1024);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.at(-1)!.version);
    db.prepare("INSERT INTO file_tombstones VALUES ('x', 'f', 1, 'completed', 'now')").run();
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
    db.close();
  });

  it('migrates once when eight processes open a fresh file at the same moment', async () => {
    const file = path.join(tmpDir(), 'race.db');
    const ran = await Promise.all(Array.from({ length: 8 }, () => runTs('test/fixtures/open-db.ts', [file])));
    for (const r of ran) expect(r.code, r.stderr).toBe(0);
    const db = openDatabase(file);
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.at(-1)!.version);
    expect((db.prepare('SELECT count(*) AS n FROM file_checkpoints').get() as { n: number }).n).toBe(8);
    db.close();
  });

  it('refuses a database on a network file system', () => {
    const dir = tmpDir();
    const mounts = path.join(dir, 'mounts');
    // A mount table in which the temp folder is an NFS mount.
    fs.writeFileSync(mounts, `/dev/vda / ext4 rw 0 0\nfiler:/export ${fs.realpathSync(dir)} nfs4 rw 0 0\n`);
    expect(() => openDatabase(path.join(dir, 'x.db'), { mountsFile: mounts })).toThrow(/network file system \(nfs4\).*local disk/);
    expect(fs.existsSync(path.join(dir, 'x.db'))).toBe(false);
  });

  it('says clearly when the folder does not exist', () => {
    const file = path.join(tmpDir(), 'missing', 'x.db');
    expect(() => openDatabase(file)).toThrow(/folder .*missing does not exist/);
  });

  it('classifies a file that is not a database as broken', () => {
    const file = path.join(tmpDir(), 'text.db');
    fs.writeFileSync(file, 'this is not a database, just text\n'.repeat(200));
    let err: unknown;
    try {
      openDatabase(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(err).toMatchObject({ kind: 'broken', code: 'SQLITE_NOTADB' });
  });

  it('classifies a truncated database as broken', async () => {
    const file = path.join(tmpDir(), 't.db');
    const s = new SqliteStore(file);
    const files = Array.from({ length: 3000 }, (_, i) => ({ fileUrl: `/x/${i}`.padEnd(200, 'x'), fileType: 't', mtimeMs: 0, size: 0, fingerprint: 'f' }));
    await s.discover(files, 0);
    s.db.pragma('wal_checkpoint(TRUNCATE)');
    await s.close();
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    let err: unknown;
    try {
      const db = openDatabase(file);
      db.prepare('SELECT count(*) FROM file_checkpoints').get();
      db.close();
    } catch (e) {
      err = e;
    }
    expect(classifySqliteError((err as { cause?: unknown }).cause ?? err) === 'broken' || (err as StoreUnavailableError).kind === 'broken').toBe(true);
  });

  it('the -wal file shrinks back after the sqlite3 shell held a read transaction open', async () => {
    const hasShell = spawnSync('sqlite3', ['-version']).status === 0;
    if (!hasShell) throw new Error('the sqlite3 shell is required (apt-get install sqlite3; .ci/run installs it)');
    const file = path.join(tmpDir(), 'wal.db');
    const limit = 1024 * 1024;
    const store = new SqliteStore(file, { journalSizeLimitBytes: limit });
    await store.discover([{ fileUrl: '/seed', fileType: 't', mtimeMs: 0, size: 0, fingerprint: 'f' }], 0);
    // The shell opens a read transaction and keeps it until we close its stdin.
    const shell = spawn('sqlite3', [file], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    shell.stdout.on('data', (d: Buffer) => (out += d.toString()));
    shell.stdin.write("BEGIN;\nSELECT 'holding', count(*) FROM file_checkpoints;\n");
    await waitFor(() => out.includes('holding'));
    // Write well past the limit while the reader pins the WAL.
    const pad = 'y'.repeat(500);
    for (let b = 0; b < 20; b++) {
      const files = Array.from({ length: 500 }, (_, i) => ({ fileUrl: `/f/${b}/${i}/${pad}`, fileType: 't', mtimeMs: 0, size: 0, fingerprint: 'f' }));
      await store.discover(files, 0);
    }
    const grown = fs.statSync(`${file}-wal`).size;
    expect(grown).toBeGreaterThan(limit);
    shell.stdin.end('COMMIT;\n');
    await new Promise((r) => shell.on('close', r));
    // The next commits checkpoint past the old reader and truncate the file to the limit.
    await waitFor(async () => {
      await store.discover([{ fileUrl: `/after/${Math.random()}/${pad}`, fileType: 't', mtimeMs: 0, size: 0, fingerprint: 'f' }], 0);
      store.db.pragma('wal_checkpoint(PASSIVE)');
      await store.discover([{ fileUrl: `/after/${Math.random()}/${pad}`, fileType: 't', mtimeMs: 0, size: 0, fingerprint: 'f' }], 0);
      return fs.statSync(`${file}-wal`).size <= limit;
    });
    await store.close();
  });
});
