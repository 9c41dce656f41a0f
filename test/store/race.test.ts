/**
 * Real processes racing one WAL database: nothing is claimed twice, nothing is lost.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { killChildren, runTs } from '../helpers/spawn.js';

afterEach(() => {
  killChildren();
  cleanupTmpDirs();
});

function readClaims(files: string[]): string[][] {
  return files.map((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean));
}

describe('four processes claiming from one database', () => {
  it('claim 20,000 rows: none twice, none lost, all completed', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'race.db');
    const N = 20_000;
    const store = new SqliteStore(db);
    const files = Array.from({ length: N }, (_, i) => ({
      fileUrl: `/in/f${i}`, fileType: 'csv', mtimeMs: 0, size: 1, fingerprint: `fp${i}`,
    }));
    for (let i = 0; i < N; i += 1000) await store.discover(files.slice(i, i + 1000), Date.now());
    await store.close();

    const outs = [0, 1, 2, 3].map((i) => path.join(dir, `out${i}`));
    const ran = await Promise.all(outs.map((out, i) => runTs('test/fixtures/claim-worker.ts', [db, out, `w${i}`, '16'])));
    for (const r of ran) expect(r.code, r.stderr).toBe(0);

    const claims = readClaims(outs);
    const all = claims.flat();
    expect(all).toHaveLength(N);
    expect(new Set(all).size).toBe(N);
    const check = new SqliteStore(db);
    expect(await check.counts()).toEqual({ pending: 0, processing: 0, completed: N, failed: 0, dead: 0 });
    const attempts = check.db.prepare('SELECT count(*) AS n, count(DISTINCT file_url) AS d FROM file_attempts').get() as { n: number; d: number };
    expect(attempts).toEqual({ n: N, d: N });
    await check.close();
  });

  it('the same through CheckpointManager: every worker tries every file, each is completed once', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'mgr.db');
    const N = 1_500;
    fs.writeFileSync(`${db}.names`, Array.from({ length: N }, (_, i) => `/in/m${i}`).join('\n'));
    const outs = [0, 1, 2, 3].map((i) => path.join(dir, `out${i}`));
    const ran = await Promise.all(outs.map((out, i) => runTs('test/fixtures/claim-worker.ts', [db, out, `m${i}`, '1', 'manager'])));
    for (const r of ran) expect(r.code, r.stderr).toBe(0);
    const all = readClaims(outs).flat();
    expect(all).toHaveLength(N);
    expect(new Set(all).size).toBe(N);
    const check = new SqliteStore(db);
    expect((await check.counts()).completed).toBe(N);
    await check.close();
  });
});
