/**
 * A simulated power cut, then a restart on what the disk would hold.
 *
 * A real `ckpt run --once` runs under strace, which stops it dead at a chosen system call: the
 * K-th rename (the K-th file is about to leave the inbox: for a move its new name exists) or
 * the K-th unlink (it was renamed aside and is about to go). strace's injection counts calls
 * per thread, so the daemon gets one thread-pool thread (UV_THREADPOOL_SIZE=1), where every
 * after-action call runs; the K-th call there is the K-th file's. (The main thread renames two
 * state files and unlinks three at start (the folder's ledger record's temp name, the database's
 * journal and the snapshot's): K starts above those counts, and the test checks that the call it
 * stopped at was an inbox file's.)
 *
 * Half of the files are known to the database before the run (pending), half are new: a
 * power cut can then leave a row that outlived its file, or a file the ledger never heard of.
 *
 * The disk is then put as a power cut at that moment could leave it (crash-state.ts): the
 * database files as of their last sync, and the folders either as the run left them or as of
 * their own last sync. Each combination is restarted with `ckpt run --once`, and afterwards
 * every file must be completed in the ledger, never dead as "vanished", and (move) lie in
 * done/ exactly once or (delete) be gone: nothing lost from both the folder and the ledger,
 * nothing handled twice.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { fingerprintOf } from '../../src/file-identity.js';
import { cli } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { rollBackDatabase, rollBackFolders } from './crash-state.js';
import { type PowerSetup, powerSetup } from './setup.js';
import { quoted, straceAvailable, traceRun } from './strace.js';

afterEach(cleanupTmpDirs);

const N = 6;
/** Where the power goes: before the K-th file's rename aside, or before the unlink of its aside name. */
const CUTS = [
  { call: 'rename', k: 3 },
  { call: 'rename', k: 5 },
  { call: 'unlink', k: 4 },
  { call: 'unlink', k: N },
] as const;
const FOLDERS = ['as left', 'as of their last sync'] as const;

/** What is wrong after the restart, one line per file (empty: all well). */
function problemsAfter(s: PowerSetup, move: boolean): string[] {
  const out: string[] = [];
  const db = new Database(s.db, { readonly: true });
  try {
    const doneNames = fs.readdirSync(s.done).filter((n) => !n.startsWith('.'));
    for (const f of s.files) {
      const name = path.basename(f);
      const row = db.prepare('SELECT status, error_message FROM file_checkpoints WHERE file_url = ?').get(f) as { status: string; error_message: string | null } | undefined;
      const vanished = db.prepare("SELECT count(*) AS n FROM file_attempts WHERE file_url = ? AND outcome = 'vanished'").get(f) as { n: number };
      if (row?.status !== 'completed') out.push(`${name}: ledger says ${row ? `${row.status} (${row.error_message ?? ''})` : 'nothing'}`);
      if (vanished.n > 0) out.push(`${name}: an attempt ended "vanished"`);
      if (fs.existsSync(f)) out.push(`${name}: still in the inbox`);
      if (move) {
        const copies = doneNames.filter((n) => fs.readFileSync(path.join(s.done, n), 'utf8') === s.contents.get(f));
        if (copies.length !== 1) out.push(`${name}: ${copies.length} copies in done/ (${copies.join(', ')})`);
      }
    }
  } finally {
    db.close();
  }
  return out;
}

/** One crash state: run, stop at the cut, roll the disk back, restart. Null: the state could not be built. */
async function cutAndRestart(action: 'move' | 'delete', cut: (typeof CUTS)[number], folders: (typeof FOLDERS)[number]): Promise<string[] | null> {
  const s = powerSetup(action === 'move' ? { moveTo: 'done' } : 'delete', { leaseMs: 1_000 }, N);
  // The state before the run: a migrated database with no -wal, which already knows half of
  // the files (an earlier daemon discovered them and stopped); the others are new.
  const before = new SqliteStore(s.db);
  const known = s.files.slice(0, N / 2).map((f) => {
    const st = fs.statSync(f);
    return { fileUrl: f, fileType: 'inbox', mtimeMs: st.mtimeMs, size: st.size, fingerprint: fingerprintOf(st) };
  });
  await before.discover(known, Date.now());
  await before.close();
  const dbBefore = fs.readFileSync(s.db);
  const inodes = new Map(s.files.map((f) => [f, fs.statSync(f).ino]));
  const r = await traceRun(s.dir, s.config, path.join(s.dir, 'trace.txt'), ['-e', `inject=${cut.call}:error=EIO:signal=SIGKILL:when=${cut.k}`], { UV_THREADPOOL_SIZE: '1' });
  // The call strace stopped the run at never returned (`= ?`, as every call cut short by the
  // kill), and was an inbox file's.
  const stopped = r.calls.filter((c) => c.name === cut.call && c.ret === '?').map((c) => quoted(c)[0]);
  expect(stopped, `the run was not stopped at ${cut.call} #${cut.k}: ${r.stdout.slice(-500)}`).toEqual([expect.stringMatching(new RegExp(`^${s.inbox}/`))]);
  rollBackDatabase(r.calls, s.db, dbBefore);
  if (folders === 'as of their last sync' && !rollBackFolders(r.calls, s.dir, inodes)) return null;
  const again = await cli(['run', '--once', '--config', s.config], { cwd: s.dir });
  const out = problemsAfter(s, action === 'move');
  if (again.code !== 0) out.push(`restart exited ${again.code}: ${again.stderr.slice(-300)}`);
  return out;
}

describe.skipIf(!straceAvailable('power cut'))('a power cut at any point of a run, then a restart', () => {
  for (const action of ['move', 'delete'] as const) {
    it(`${action}: every file ends completed and ${action === 'move' ? 'in done/ once' : 'deleted'}, none dead as vanished`, { timeout: 300_000 }, async () => {
      const problems: string[] = [];
      let built = 0;
      for (const cut of CUTS) {
        for (const folders of FOLDERS) {
          const p = await cutAndRestart(action, cut, folders);
          if (p === null) continue;
          built++;
          problems.push(...p.map((line) => `cut before ${cut.call} #${cut.k}, folders ${folders}: ${line}`));
        }
      }
      expect(problems).toEqual([]);
      // Every cut was tried with the folders as left; most also as of their last sync.
      expect(built).toBeGreaterThanOrEqual(CUTS.length);
    });
  }
});
