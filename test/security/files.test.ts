/**
 * What ckpt creates on disk and as whom: the database and its -wal/-shm are private to the
 * user (0600, or fileMode and group when configured), whatever the umask; so are the fallback's
 * journals and claim markers; `ckpt run` as root says it should not be.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countStatus, drop, killDaemons, setup, startDaemon, started } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { otherUser, runningAsRoot as isRoot } from '../helpers/other-user.js';
import { chaosCommand, filesUnder, killMyDaemons, startDaemonWith } from '../chaos/support.js';

const ROOT_WARNING = 'running as root: handlers run as root too. Run ckpt as a dedicated user (see config/ckpt.service)';
/** An ordinary user: the test's own when not root, else nobody (65534). */
const nobody = otherUser(65534);
/** A group other than the test's own, to configure: Debian's `nogroup`, if present. */
const otherGroup = (() => {
  const r = spawnSync('getent', ['group', 'nogroup'], { encoding: 'utf8' });
  const m = /^nogroup:[^:]*:(\d+):/.exec(r.stdout ?? '');
  return m ? { name: 'nogroup', gid: Number(m[1]) } : null;
})();
if (!isRoot) console.log('skipping the root-warning and group tests: they need to run as root');
if (isRoot && nobody.skipReason !== null) console.log(`skipping the ordinary-user test: ${nobody.skipReason}`);

let savedUmask: number | null = null;
afterEach(() => {
  if (savedUmask !== null) process.umask(savedUmask);
  savedUmask = null;
  killDaemons();
  killMyDaemons();
  cleanupTmpDirs();
});

const modeOf = (p: string) => fs.statSync(p).mode & 0o777;

describe('files ckpt creates', () => {
  it('the database, -wal and -shm are 0600 by default, even with umask 000', async () => {
    // The daemon inherits the umask: with 000, only ckpt's own choice of mode protects them.
    savedUmask = process.umask(0o000);
    const s = setup({ handler: { command: chaosCommand() } });
    const d = startDaemon(s);
    await started(d);
    drop(s.inbox, 'a.csv', 'ok\n');
    await waitFor(() => countStatus(s.db, 'completed') === 1);
    for (const f of [s.db, `${s.db}-wal`, `${s.db}-shm`]) expect([f, modeOf(f).toString(8)]).toEqual([f, '600']);
    d.child.kill('SIGTERM');
    await d.exited;
  });

  it.skipIf(!isRoot || otherGroup === null)('fileMode "0640" with a group: the database, -wal and -shm are 0640 and belong to that group', async () => {
    const s = setup({ handler: { command: chaosCommand() }, fileMode: '0640', group: otherGroup!.name });
    const d = startDaemon(s);
    await started(d);
    drop(s.inbox, 'a.csv', 'ok\n');
    await waitFor(() => countStatus(s.db, 'completed') === 1);
    const got = [s.db, `${s.db}-wal`, `${s.db}-shm`].map((f) => ({ file: path.basename(f), mode: modeOf(f).toString(8), gid: fs.statSync(f).gid }));
    expect(got, `config "group": "${otherGroup!.name}" (gid ${otherGroup!.gid})`).toEqual(
      ['ckpt.db', 'ckpt.db-wal', 'ckpt.db-shm'].map((file) => ({ file, mode: '640', gid: otherGroup!.gid })),
    );
  });

  it('journals and claim markers written while the database is locked are 0600', async () => {
    const s = setup({ handler: { command: chaosCommand() }, lockTimeoutMs: 500 });
    const d = startDaemon(s);
    await started(d);
    drop(s.inbox, 'first.csv', 'ok\n');
    await waitFor(() => countStatus(s.db, 'completed') === 1);
    const sh = spawn('sqlite3', [s.db], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    sh.stdout.on('data', (b: Buffer) => (out += b.toString()));
    sh.stdin.write(".timeout 5000\nBEGIN EXCLUSIVE;\nSELECT 'LOCKED';\n");
    await waitFor(() => out.includes('LOCKED'));
    const fallbackDir = `${s.db}.fallback`;
    for (let i = 0; i < 5; i++) drop(s.inbox, `locked${i}.csv`, 'sleep 500\n');
    await waitFor(() => filesUnder(fallbackDir).length > 0, { timeoutMs: 15_000 });
    const seen = new Map<string, string>();
    // Look while files are in flight, so that markers are there too.
    for (let i = 0; i < 20; i++) {
      for (const f of filesUnder(fallbackDir)) {
        try {
          seen.set(path.relative(fallbackDir, f), modeOf(f).toString(8));
        } catch {
          // removed meanwhile
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    sh.stdin.end('COMMIT;\n.quit\n');
    expect(seen.size).toBeGreaterThan(0);
    expect([...seen].filter(([, m]) => m !== '600')).toEqual([]);
  });
});

describe('who runs ckpt', () => {
  it.skipIf(!isRoot)('`ckpt run` as root logs a warning', async () => {
    const s = setup({ handler: { command: chaosCommand() } });
    const d = startDaemon(s);
    await started(d);
    const w = d.lines.find((l) => l.msg === ROOT_WARNING);
    expect(w?.level).toBe('warn');
  });

  it.skipIf(isRoot && nobody.skipReason !== null)('`ckpt run` as an ordinary user does not', async () => {
    const as = isRoot ? nobody : undefined;
    const s = setup({ handler: { command: chaosCommand(as) } });
    as?.own(s.dir);
    const d = as ? startDaemonWith(s, { as }) : startDaemon(s);
    await started(d);
    const f = drop(s.inbox, 'a.csv', 'ok\n');
    as?.own(f);
    await waitFor(() => countStatus(s.db, 'completed') === 1);
    expect(d.lines.some((l) => l.msg === ROOT_WARNING)).toBe(false);
    expect(fs.statSync(s.db).uid).toBe(as?.uid ?? process.getuid!());
  });
});
