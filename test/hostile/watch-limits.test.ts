/**
 * The kernel's inotify limits, for real: another process of the daemon's user holds every
 * inotify instance the user may have (fs.inotify.max_user_instances, 128 here), so the daemon's
 * folder watch fails with EMFILE. The daemon must say so once, with the fix, and still find new
 * files by scanning the folder. The user is a numeric uid of its own (not nobody), so that
 * exhausting its instances cannot disturb any other test running at the same time.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { drop, killDaemons, setup, started, statusOf } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { otherUser } from '../helpers/other-user.js';
import { chaosCommand, killMyDaemons, startDaemonWith } from '../chaos/support.js';

/** A uid no account uses: only this test's processes run under it. */
const user = otherUser(47_311);

/** inotify_init1's syscall number (the holder calls it from perl, which every box has). */
const INOTIFY_INIT1: Partial<Record<string, number>> = { x64: 294, arm64: 26 };

const skipReason: string | null = (() => {
  if (user.skipReason !== null) return user.skipReason;
  if (INOTIFY_INIT1[process.arch] === undefined) return `inotify_init1's syscall number on ${process.arch} is not known here`;
  if (spawnSync('perl', ['-e', '1']).status !== 0) return 'no perl';
  return null;
})();
if (skipReason !== null) console.log(`skipping the inotify-limit test: ${skipReason}`);

/** Takes every inotify instance the uid may have and holds them until killed; prints how many and the errno that stopped it. */
const HOLDER = `$| = 1; my $n = 0; $n++ while syscall(${INOTIFY_INIT1[process.arch] ?? -1}, 0) >= 0; print "$n " . ($! + 0) . "\n"; <STDIN>;`;

const holders: ChildProcess[] = [];
afterEach(() => {
  for (const h of holders.splice(0)) h.kill('SIGKILL');
  killDaemons();
  killMyDaemons();
  cleanupTmpDirs();
});

async function takeAllInstances(): Promise<{ taken: number; errno: number }> {
  const argv = [...user.prefix(), 'perl', '-e', HOLDER];
  const h = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  holders.push(h);
  let out = '';
  h.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor(() => out.includes('\n'), { timeoutMs: 10_000 });
  const [taken, errno] = out.trim().split(' ').map(Number);
  return { taken: taken!, errno: errno! };
}

describe('inotify limits', () => {
  it.skipIf(skipReason !== null)('no inotify instance left for the daemon (EMFILE): it says so once and still handles new files, by scanning', async () => {
    // rescanMs far away: only the fallback scan (every 5 s) can find the file dropped later.
    const s = setup({ handler: { command: chaosCommand(user) }, rescanMs: 600_000 });
    user.own(s.dir);
    const { taken, errno } = await takeAllInstances();
    expect(errno).toBe(24); // EMFILE: the per-user limit on inotify instances
    expect(taken).toBeGreaterThan(0);

    const d = startDaemonWith(s, { as: user });
    await started(d);
    const f = drop(s.inbox, 'late.csv', 'ok\nid LATE\n');
    user.own(f);
    await waitFor(() => statusOf(s.db, f) === 'completed', { timeoutMs: 30_000 });

    const limit = d.lines.filter((l) => String(l.msg).includes('EMFILE'));
    expect(limit).toHaveLength(1);
    expect(String(limit[0]!.msg)).toMatch(/max_user_instances/);
    expect(limit[0]).toMatchObject({ level: 'error', folder: s.inbox });
    expect(path.isAbsolute(String(limit[0]!.folder))).toBe(true);
  });
});
