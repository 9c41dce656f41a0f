/**
 * Minimal reproductions of what the soak found around after-actions, each through the real CLI:
 *
 * - A file replaced (same name, new content) while the previous content's after-action runs
 *   must not be moved unhandled, nor deleted: the move works on the path, and the path may hold
 *   another file by then. The soak hit this within seconds (f0000028, f0000047: a content never
 *   handled was deleted, or moved into done/ and its own version then went dead as "vanished").
 * - A daemon SIGKILLed after committing a completion but before its move: the file must still
 *   end up in done/ once (the after-action must not be lost), with no temporary copy left.
 * - A stopped worker whose claim was taken over must, when it wakes, change nothing.
 * - A lease is not "lost" just because the file's after-action is still running.
 * - A file that goes dead because a lease expiry spent its retry budget still gets onDead
 *   (the 30-minute soak left f0011601 and f0012143 dead in the inbox, after_action NULL).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { applyAfterAction } from '../../src/run/after-action.js';
import { Runner } from '../../src/run/runner.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { type FileIdentity, fingerprintOf, identityOf as identityOfStat } from '../../src/file-identity.js';
import { drop, killDaemons, rows, setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { chaosCommand, chaosRecords, filesUnder, replaceAtomically, whereIs } from './support.js';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';

const shmDirs: string[] = [];
afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
  for (const d of shmDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const BIG = 64 * 1024 * 1024;

/** Whether /dev/shm is another file system than the temp folder (so a move there copies), with room. */
const shmUsable: boolean = (() => {
  try {
    if (fs.statSync('/dev/shm').dev === fs.statSync(os.tmpdir()).dev) return false;
    const st = fs.statfsSync('/dev/shm');
    return st.bavail * st.bsize >= 3 * BIG && fs.accessSync('/dev/shm', fs.constants.W_OK) === undefined;
  } catch {
    return false;
  }
})();
if (!shmUsable) {
  console.log(`skipping the cross-device after-action tests: they need /dev/shm on another file system than ${os.tmpdir()}, writable, with ${(3 * BIG) / 1048576} MB free`);
}

/** A fresh folder on /dev/shm, removed after the test. */
function shmDir(): string {
  const d = fs.mkdtempSync('/dev/shm/ckpt-chaos-');
  shmDirs.push(d);
  return d;
}

function bigContent(id: string): Buffer {
  const head = Buffer.from(`ok\nid ${id}\n`);
  return Buffer.concat([head, Buffer.alloc(BIG - head.length, 0x41)]);
}

function identityOf(file: string): FileIdentity {
  return identityOfStat(fs.lstatSync(file));
}

/** Runs `fn` after `turns` turns of the event loop (0: at once). */
function afterTurns(turns: number, fn: () => void): void {
  if (turns <= 0) fn();
  else setImmediate(() => afterTurns(turns - 1, fn));
}

/**
 * A sender drops a new file under the name of a handled file while that file's after-action
 * removes it from the inbox. The replacement is timed from the moment the handled file appears
 * in done/ (or, for a delete, from the start), 0 to 11 event-loop turns later, so that across
 * the trials it lands at every step of the removal. Each trial's new content must still be in
 * the inbox afterwards. The removal used to look (lstat) and then unlink: a file dropped
 * between the two was deleted unhandled (the soak's "overwritten content ends in no folder").
 */
async function raceRemoval(action: 'delete' | { moveTo: string }, trials: number): Promise<{ lost: string[]; leftovers: string[]; moved: number }> {
  const root = tmpDir('ckpt-race-');
  const inbox = path.join(root, 'inbox');
  fs.mkdirSync(inbox);
  const done = typeof action === 'object' ? action.moveTo : null;
  if (done) fs.mkdirSync(done, { recursive: true });
  const lost: string[] = [];
  let moved = 0;
  for (let i = 0; i < trials; i++) {
    const file = path.join(inbox, `t${i}.csv`);
    fs.writeFileSync(file, `A${i}\n`);
    const identity = identityOf(file);
    let replaced: () => void = () => undefined;
    const replacedP = new Promise<void>((r) => (replaced = r));
    const replace = (): void => afterTurns(i % 12, () => {
      replaceAtomically(file, `B${i}\n`);
      replaced();
    });
    let w: fs.FSWatcher | null = null;
    if (done) {
      let fired = false;
      w = fs.watch(done, (_ev, name) => {
        if (!fired && name?.toString() === `t${i}.csv`) {
          fired = true;
          replace();
        }
      });
    } else {
      replace();
    }
    try {
      const r = await applyAfterAction(action, file, { root: inbox, readyMarker: null, identity });
      if (r.startsWith('moved to')) moved++;
      await replacedP;
    } finally {
      w?.close();
    }
    const now = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (now !== `B${i}\n`) lost.push(`t${i}.csv (replaced after ${i % 12} turns): inbox holds ${JSON.stringify(now)}`);
  }
  const leftovers = [...filesUnder(inbox), ...(done ? filesUnder(done) : [])].filter((p) => path.basename(p).startsWith('.'));
  return { lost, leftovers, moved };
}

/** A pid that no process has any more. */
function deadPid(): number {
  return spawnSync('true').pid!;
}

describe('after-actions under faults', () => {
  it('a worker that took over an unfinished move and died before finishing it is taken over in turn', async () => {
    const dir = tmpDir('ckpt-retake-');
    const inbox = path.join(dir, 'inbox');
    const done = path.join(dir, 'done');
    fs.mkdirSync(inbox);
    const store = new SqliteStore(path.join(dir, 'ckpt.db'));
    try {
      const file = path.join(inbox, 'r.csv');
      fs.writeFileSync(file, 'ok\n');
      const st = fs.lstatSync(file);
      const found = { fileUrl: file, fileType: 'inbox', mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) };
      await store.discover([found], Date.now());
      // The first worker completes and dies before its move...
      const [c] = await store.claim(1, { workerId: `h:${deadPid()}`, leaseMs: 10_000, now: Date.now() });
      const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 };
      await store.complete([{ fileUrl: file, token: c!.token, now: Date.now(), afterAction: `move:${done}`, fingerprint: found.fingerprint, stats }]);
      // ...the worker that takes the move over dies before finishing it too.
      const first = (await store.discover([found], Date.now())).unfinished?.[0];
      expect(first?.afterAction).toBe(`move:${done}`);
      expect(await store.takeAfterAction(first!, `h:${deadPid()}`, Date.now())).toBe(true);

      const runner = new Runner({
        store,
        handler: () => Promise.reject(new Error('not called')),
        workerId: `h:${process.pid}`,
        host: 'h',
        concurrency: 1,
        leaseMs: 10_000,
        folders: [{ dir: inbox, readyMarker: null }],
        onSuccess: { moveTo: done },
        onDead: 'keep',
        logger: pino({ level: 'silent' }),
      });
      const again = (await store.discover([found], Date.now())).unfinished?.[0];
      expect(again, 'the store no longer reports the unfinished move: the file would stay in the inbox').toBeDefined();
      await runner.finishAfterAction(again!);
      expect({ inInbox: fs.existsSync(file), inDone: fs.existsSync(path.join(done, 'r.csv')) }).toEqual({ inInbox: false, inDone: true });
      expect((await store.get(file))!.afterAction).toMatch(new RegExp(`^move:${done.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(redone by h:${process.pid} at [^(]*\\)$`));
    } finally {
      await store.close();
    }
  });

  it('a file dropped under the same name while the handled one is moved out of the inbox is never removed with it', async () => {
    const root = tmpDir('ckpt-race-done-');
    const { lost, leftovers, moved } = await raceRemoval({ moveTo: path.join(root, 'done') }, 96);
    expect(moved, 'no trial got as far as the move: the race was not reproduced').toBeGreaterThan(48);
    expect({ lost, leftovers }).toEqual({ lost: [], leftovers: [] });
  });

  it('a file dropped under the same name while the handled one is deleted is never deleted with it', async () => {
    const { lost, leftovers } = await raceRemoval('delete', 96);
    expect({ lost, leftovers }).toEqual({ lost: [], leftovers: [] });
  });

  it.skipIf(!shmUsable)('a file replaced while the previous content is being moved (copied across file systems) is neither deleted nor moved unhandled', async () => {
    const done = path.join(shmDir(), 'done');
    fs.mkdirSync(done);
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: done }, concurrency: 1 });
    const d = startDaemon(s);
    await started(d);
    const file = path.join(s.inbox, 'big.csv');
    let replaced = false;
    // The moment the copy into done/ begins (its temporary file appears), a sender drops new
    // content under the same name.
    const w = fs.watch(done, (_ev, name) => {
      if (!replaced && name?.toString().startsWith('.ckpt-move-')) {
        replaced = true;
        replaceAtomically(file, 'ok\nid B\n');
      }
    });
    try {
      drop(s.inbox, 'big.csv', bigContent('A'));
      await d.waitForLog((l) => l.msg === 'completed' && l.path === file, 30_000);
    } finally {
      w.close();
    }
    expect(replaced, 'the copy was never seen: the test did not reproduce the window').toBe(true);
    // B was dropped by a sender after A was handled: it must be handled in its own right.
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'end' && r.id === 'B'), { timeoutMs: 10_000 }).catch(() => undefined);
    const bAt = whereIs('B', s.inbox, done);
    expect(
      bAt,
      `content B (dropped under big.csv while A was being moved) was deleted by A's after-action; log: ${JSON.stringify(d.lines.filter((l) => l.path === file).map((l) => [l.msg, l.afterAction]))}`,
    ).not.toEqual([]);
    expect(chaosRecords(s.recordLog).filter((r) => r.ev === 'start').map((r) => r.id)).toEqual(['A', 'B']);
  });

  it('a file replaced while the previous content is being moved (same file system, taken names in done/) is not moved unhandled', async () => {
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 1 });
    const done = path.join(s.dir, 'done');
    fs.mkdirSync(done);
    // 8000 taken names: the move tries link(2) on each in turn (no overwrite), which keeps it
    // busy for a while after the outcome was committed.
    fs.writeFileSync(path.join(done, 'r.csv'), 'taken\n');
    for (let i = 1; i < 8000; i++) fs.writeFileSync(path.join(done, `r.${i}.csv`), 'taken\n');
    const d = startDaemon(s);
    await started(d);
    const file = path.join(s.inbox, 'r.csv');
    drop(s.inbox, 'r.csv', 'ok\nid A\n');
    // The outcome is committed; the move starts right after. Replace the file during the move.
    await waitFor(() => statusOf(s.db, file) === 'completed', { intervalMs: 5 });
    await new Promise((r) => setTimeout(r, 20));
    replaceAtomically(file, 'ok\nid B\n');
    await d.waitForLog((l) => l.msg === 'completed' && l.path === file && l.attempt === 1, 30_000);
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'end' && r.id === 'B'), { timeoutMs: 8_000 }).catch(() => undefined);
    const handled = chaosRecords(s.recordLog).filter((r) => r.ev === 'start').map((r) => r.id);
    // B's own move walks the same 8000 taken names: wait until it has landed somewhere in done/.
    await waitFor(() => whereIs('B', s.inbox, done).some((p) => p.startsWith(done)), { timeoutMs: 20_000 }).catch(() => undefined);
    const bAt = whereIs('B', s.inbox, done);
    const first = d.lines.find((l) => l.msg === 'completed' && l.path === file && l.attempt === 1);
    expect(
      { handled, bAt: bAt.map((p) => path.relative(s.dir, p)) },
      `B must be handled before it is moved; A's after-action was: ${String(first?.afterAction)}`,
    ).toEqual({ handled: ['A', 'B'], bAt: [expect.stringMatching(/^done\/r\.\d+\.csv$/)] });
  });

  it.skipIf(!shmUsable)('a daemon SIGKILLed between committing a completion and finishing its move: the file still ends up in done/ once', async () => {
    const done = path.join(shmDir(), 'done');
    fs.mkdirSync(done);
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: done }, concurrency: 1 });
    const a = startDaemon(s);
    await started(a);
    const file = path.join(s.inbox, 'k.csv');
    let killed = false;
    const w = fs.watch(done, (_ev, name) => {
      if (!killed && name?.toString().startsWith('.ckpt-move-')) {
        killed = true;
        a.child.kill('SIGKILL');
      }
    });
    try {
      drop(s.inbox, 'k.csv', bigContent('K'));
      await a.exited;
    } finally {
      w.close();
    }
    expect(killed, 'the copy was never seen: the test did not reproduce the window').toBe(true);
    expect(statusOf(s.db, file)).toBe('completed');
    const b = startDaemon(s);
    await started(b);
    // A rescan (2 s in these tests) and a stability period later, anything to redo is redone.
    await waitFor(() => whereIs('K', done).length === 1 && !fs.existsSync(file), { timeoutMs: 8_000 }).catch(() => undefined);
    const state = {
      inInbox: fs.existsSync(file),
      inDone: whereIs('K', done).map((p) => path.basename(p)),
      tempFiles: filesUnder(done).filter((p) => path.basename(p).startsWith('.')).length,
      runs: chaosRecords(s.recordLog).filter((r) => r.ev === 'start').length,
      row: rows(s.db).map((r) => ({ status: r.status, after_action: r.after_action })),
    };
    expect(state, 'the completed file must be moved exactly once, by someone, and the partial copy removed').toEqual({
      inInbox: false,
      inDone: ['k.csv'],
      tempFiles: 0,
      runs: 1,
      // The label records who finished the move for the dead worker.
      row: [{ status: 'completed', after_action: expect.stringMatching(new RegExp(`^move:${done.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(redone by `)) }],
    });
  });

  it('a worker stopped past its lease wakes up and changes nothing: no outcome, no move', async () => {
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 1, leaseMs: 1_000 });
    const a = startDaemon(s);
    await started(a);
    const file = drop(s.inbox, 's.csv', 'sleep 200\nid S\n');
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'start' && r.id === 'S'));
    a.child.kill('SIGSTOP');
    try {
      // The handler (its own process group) finishes while its daemon is stopped.
      await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'end' && r.id === 'S'));
      const b = startDaemon(s);
      await started(b);
      await waitFor(() => statusOf(s.db, file) === 'completed' && fs.existsSync(path.join(s.dir, 'done', 's.csv')), { timeoutMs: 15_000 });
    } finally {
      a.child.kill('SIGCONT');
    }
    await a.waitForLog((l) => l.path === file && /taken over/.test(String(l.msg)) && l.msg !== 'took over an expired claim');
    const att = rows(s.db, 'SELECT outcome, worker_id FROM file_attempts ORDER BY id');
    expect(att.map((x) => x.outcome)).toEqual(['lease_expired', 'completed']);
    expect(att[0]!.worker_id).toBe(`${os.hostname()}:${a.child.pid}`);
    expect(filesUnder(path.join(s.dir, 'done')).map((p) => path.basename(p))).toEqual(['s.csv']);
    expect(fs.readdirSync(s.inbox).filter((n) => n !== LEDGER_MARKER)).toEqual([]);
    // A's lines about the file after it woke: refusals only, never a completion or a move.
    const aboutFile = a.lines.filter((l) => l.path === file);
    expect(aboutFile.some((l) => l.msg === 'completed' || String(l.msg).startsWith('after-action'))).toBe(false);
    expect(chaosRecords(s.recordLog).filter((r) => r.ev === 'start')).toHaveLength(2);
  });

  it('a lease is not reported lost while the completed file is still being moved', async () => {
    // One daemon, one slot: nobody else can take the claim, so any "lease lost" is false.
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 1, leaseMs: 300 });
    const done = path.join(s.dir, 'done');
    fs.mkdirSync(done);
    fs.writeFileSync(path.join(done, 'l.csv'), 'taken\n');
    for (let i = 1; i < 8000; i++) fs.writeFileSync(path.join(done, `l.${i}.csv`), 'taken\n');
    const d = startDaemon(s);
    await started(d);
    const file = drop(s.inbox, 'l.csv', 'ok\nid L\n');
    await d.waitForLog((l) => l.msg === 'completed' && l.path === file, 30_000);
    const lost = d.lines.filter((l) => l.path === file && /lease lost/.test(String(l.msg)));
    expect(lost.map((l) => l.msg), 'the renewal after the commit found the row completed and called the lease lost').toEqual([]);
  });

  it('a file that goes dead because its lease ran out with the retry budget spent is still moved to dead/', async () => {
    const s = setup({
      handler: { command: chaosCommand() },
      onDead: { moveTo: 'dead' },
      createDirs: true,
      concurrency: 1,
      leaseMs: 1_000,
      retry: { maxRetries: 0, baseDelayMs: 10, maxDelayMs: 10 },
    });
    const a = startDaemon(s);
    await started(a);
    const file = drop(s.inbox, 'x.csv', 'sleep 5000\nid X\n');
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'start' && r.id === 'X'));
    a.child.kill('SIGKILL');
    await a.exited;
    const b = startDaemon(s);
    await started(b);
    await waitFor(() => statusOf(s.db, file) === 'dead', { timeoutMs: 15_000 });
    // A rescan and a stability period later, the after-action has had every chance to run. A
    // move is link, folder sync, then unlink: both names exist for a moment in between.
    await waitFor(() => fs.existsSync(path.join(s.dir, 'dead', 'x.csv')) && !fs.existsSync(file), { timeoutMs: 6_000 }).catch(() => undefined);
    const row = rows(s.db)[0]!;
    expect(
      { inInbox: fs.existsSync(file), inDead: fs.existsSync(path.join(s.dir, 'dead', 'x.csv')), status: row.status, after_action: row.after_action },
      `error_message: ${String(row.error_message)}`,
    ).toEqual({ inInbox: false, inDead: true, status: 'dead', after_action: expect.stringMatching(/^move:/) });
  });
});
