import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CheckpointManager } from '../../src/checkpoint-manager.js';
import { fingerprintOf, identityOf, isVersion, parseFingerprint } from '../../src/file-identity.js';
import { openStore } from '../../src/store/open-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(() => cleanupTmpDirs());

describe('file identity', () => {
  it('reads back from a fingerprint exactly the identity of the file it was written from', () => {
    const file = path.join(tmpDir(), 'a.csv');
    fs.writeFileSync(file, 'id,v\n1,2\n');
    const st = fs.lstatSync(file);
    const parsed = parseFingerprint(fingerprintOf(st));
    expect(parsed).toEqual(identityOf(st));
    expect(parsed).toEqual({ size: st.size, mtimeMs: Math.trunc(st.mtimeMs), dev: st.dev, ino: st.ino });
    expect(isVersion(fs.lstatSync(file), parsed!)).toBe(true);
    // Rewritten in place (same inode): another version.
    fs.appendFileSync(file, '3,4\n');
    expect(isVersion(fs.lstatSync(file), parsed!)).toBe(false);
  });

  it('reads no identity from a string fingerprintOf did not write', () => {
    for (const bad of ['', 'unversioned', 'v2', '1:2:3', '1:2:3:4:5', 'a:b:c:d', '1::3:4', '1:2:3:Infinity', 'sha256:abcdef']) {
      expect(parseFingerprint(bad), bad).toBeUndefined();
    }
  });

  it('reads no identity from the fingerprint of a claim made through the library without a version', async () => {
    const db = path.join(tmpDir(), 'ckpt.db');
    const mgr = new CheckpointManager({ database: db, workerId: 'test:1' });
    try {
      expect(await mgr.claimFile('s3://bucket/a.csv', 'csv', new Date(1_700_000_000_000))).toBe(true);
    } finally {
      await mgr.close();
    }
    const store = openStore(db);
    try {
      const row = await store.get('s3://bucket/a.csv');
      expect(row?.fingerprint).toBe('unversioned');
      expect(parseFingerprint(row!.fingerprint)).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
