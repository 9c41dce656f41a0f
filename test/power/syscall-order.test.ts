/**
 * Durable before destructive, seen in the system calls of a real `ckpt run --once` (strace):
 * for every handled file, the write that records its outcome (in the -wal, or in the
 * degraded-mode journal) is synced before the first call that takes the file out of the inbox.
 * A move also syncs the destination folder between the new name and the removal of the old
 * one, and the inbox after the removal, before the file's "completed" log line is written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { holdLock, killShells } from '../fallback/helpers.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { powerSetup } from './setup.js';
import { firstLink, firstRemoval, recordsOutcome, syncBetween, targetPath } from './ledger-writes.js';
import { type Call, fdPath, isWrite, straceAvailable, traceRun } from './strace.js';

afterEach(() => {
  killShells();
  cleanupTmpDirs();
});

/** Why `file`'s trace breaks the order, or null when it keeps it. */
function orderProblem(calls: readonly Call[], file: string, inbox: string, move: boolean, outcome = 'completed'): string | null {
  const removal = firstRemoval(calls, file);
  if (!removal) return 'never taken out of the inbox';
  const write = calls.find((c) => c.end < removal.start && recordsOutcome(c, file));
  if (!write) return `no write recording its outcome before ${removal.name} (line ${removal.start})`;
  if (!syncBetween(calls, fdPath(write)!, write, removal)) {
    return `its outcome (line ${write.start}, ${fdPath(write)}) is not synced before ${removal.name} (line ${removal.start})`;
  }
  if (move) {
    const link = firstLink(calls, file);
    if (!link || link.end > removal.start) return 'no link to the destination before the removal';
    if (!syncBetween(calls, path.dirname(targetPath(link)!), link, removal)) return `the new name ${targetPath(link)} is not synced before the old one goes`;
  }
  // The removal is a rename aside and an unlink of that name: both synced (the inbox) before the log says so.
  const aside = removal.name.startsWith('rename') ? targetPath(removal) : null;
  const last = (aside && calls.find((c) => c.name.startsWith('unlink') && c.start > removal.end && fdPath(c) === null && c.args.includes(`"${aside}"`))) || removal;
  // ckpt logs to its standard output (descriptor 1).
  const logged = calls.find((c) => isWrite(c) && c.start > last.end && c.args.startsWith('1<') && c.args.includes(file) && c.args.includes(`\\"outcome\\":\\"${outcome}\\"`));
  if (!logged) return `no "${outcome}" log line after the removal`;
  if (!syncBetween(calls, inbox, last, logged)) return `the removal (line ${last.start}) is not synced before the log line (line ${logged.start})`;
  return null;
}

describe.skipIf(!straceAvailable('syscall order'))('an outcome is on disk before its file leaves the inbox (strace of a real daemon)', () => {
  for (const action of ['move', 'delete'] as const) {
    for (const mode of ['normal', 'degraded'] as const) {
      it(`${action}, ${mode} mode: for every file, outcome write -> its sync -> first removal`, async () => {
        const onSuccess = action === 'move' ? { moveTo: 'done' } : 'delete';
        const s = powerSetup(onSuccess, { lockTimeoutMs: 300 });
        let release: (() => Promise<void>) | undefined;
        if (mode === 'degraded') {
          // A ckpt database, then the real sqlite3 shell holding its write lock for the whole run.
          await new SqliteStore(s.db).close();
          release = (await holdLock(s.db, 'begin-exclusive')).release;
        }
        const r = await traceRun(s.dir, s.config, path.join(s.dir, 'trace.txt'));
        await release?.();
        expect(r.code, r.stderr).toBe(0);
        if (mode === 'degraded') expect(r.stdout).toContain('switching to degraded mode');
        else expect(r.stdout).not.toContain('switching to degraded mode');
        for (const f of s.files) expect(fs.existsSync(f), f).toBe(false);
        if (action === 'move') expect(fs.readdirSync(s.done).sort()).toEqual(s.files.map((f) => path.basename(f)).sort());
        const problems = s.files.map((f) => [path.basename(f), orderProblem(r.calls, f, s.inbox, action === 'move')]).filter(([, p]) => p !== null);
        expect(problems).toEqual([]);
      });
    }
  }

  it('onDead move, normal mode: a file that fails for good is recorded dead, synced, then moved', async () => {
    const s = powerSetup('keep', { onDead: { moveTo: 'done' } }, 6, 'bad');
    const r = await traceRun(s.dir, s.config, path.join(s.dir, 'trace.txt'));
    expect(r.code, r.stderr).toBe(1); // --once: some files are dead
    expect(fs.readdirSync(s.done).sort()).toEqual(s.files.map((f) => path.basename(f)).sort());
    const problems = s.files.map((f) => [path.basename(f), orderProblem(r.calls, f, s.inbox, true, 'dead')]).filter(([, p]) => p !== null);
    expect(problems).toEqual([]);
  });
});
