/**
 * A discovery that arrives late (a daemon SIGSTOPped with files in its hand-off queue, a hand-off
 * retried after a back-off) must not make a new version of a file another daemon has handled
 * since: the soak had files go dead as "vanished" while their content sat in done/, all handed
 * over by a daemon right after SIGCONT. The daemon now looks once more before handing files to
 * the store (stillAsFound), on real files and a real SQLite ledger here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stillAsFound } from '../../src/run/recheck-discovered.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { DiscoveredFile } from '../../src/store/types.js';
import { fingerprintOf } from '../../src/file-identity.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { replaceAtomically } from './support.js';

const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  cleanupTmpDirs();
});

function found(file: string): DiscoveredFile {
  const st = fs.lstatSync(file);
  return { fileUrl: file, fileType: 'inbox', mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) };
}

/**
 * The soak's sequence: content 1 is found stable by a daemon that then stops; content 2
 * replaces it; another daemon claims the file, reads content 2, completes and moves it away.
 * Then the stopped daemon wakes and hands over what it found (content 1). Returns the rows.
 */
async function lateHandOver(filter: boolean): Promise<{ status: string; version: number }> {
  const dir = tmpDir('ckpt-stale-');
  const inbox = path.join(dir, 'inbox');
  const done = path.join(dir, 'done');
  fs.mkdirSync(inbox);
  fs.mkdirSync(done);
  const store = new SqliteStore(path.join(dir, 'ckpt.db'));
  stores.push(store);
  const file = path.join(inbox, 'f.csv');
  fs.writeFileSync(file, 'content 1\n');
  const stale = found(file); // the stopped daemon's observation
  await store.discover([stale], Date.now()); // the same content, found by the other daemon

  replaceAtomically(file, 'content 2, longer\n');
  const [claim] = await store.claim(1, { workerId: 'other:1', leaseMs: 10_000, now: Date.now() });
  expect(claim?.fileUrl).toBe(file);
  const read = found(file);
  const [res] = await store.complete([
    { fileUrl: file, token: claim!.token, now: Date.now(), fingerprint: read.fingerprint, stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 } },
  ]);
  expect(res).toBe('ok');
  fs.renameSync(file, path.join(done, 'f.csv'));

  const handed = filter ? stillAsFound([stale]).fresh : [stale];
  await store.discover(handed, Date.now());
  const row = (await store.get(file))!;
  return { status: row.status, version: row.version };
}

describe('late discoveries', () => {
  it('a file handled and moved away since a daemon found it stable does not come back as a new version', async () => {
    expect(await lateHandOver(true)).toEqual({ status: 'completed', version: 1 });
  });

  it('(the same hand-over without the last look makes the ghost version the soak saw)', async () => {
    // Documents what stillAsFound prevents: the store alone cannot tell a late observation from
    // a changed file.
    expect(await lateHandOver(false)).toEqual({ status: 'pending', version: 2 });
  });

  it('keeps files that are as they were found, drops changed and vanished ones', async () => {
    const dir = tmpDir('ckpt-stale-');
    const same = path.join(dir, 'same.csv');
    const changed = path.join(dir, 'changed.csv');
    const gone = path.join(dir, 'gone.csv');
    for (const f of [same, changed, gone]) fs.writeFileSync(f, 'x\n');
    const seen = [same, changed, gone].map(found);
    replaceAtomically(changed, 'x\n'); // same size, new inode
    fs.unlinkSync(gone);
    const { fresh, stale } = stillAsFound(seen);
    expect({ fresh: fresh.map((f) => path.basename(f.fileUrl)), stale: stale.map((f) => path.basename(f.fileUrl)) }).toEqual({
      fresh: ['same.csv'],
      stale: ['changed.csv', 'gone.csv'],
    });
  });
});
