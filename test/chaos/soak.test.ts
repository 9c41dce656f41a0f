/**
 * The CI-sized chaos soak: scripts/soak/run.ts with three daemons, a producer, and faults
 * (SIGKILL, SIGSTOP past the lease, SIGTERM, a held write lock) for 60 s, about 70 s in all.
 * It prints one summary line (shown here) and exits 0 only if every check of the guarantee
 * passed; on failure its stderr lists each violation with its evidence, and the work folder is
 * kept. The long run is `npm run soak -- --minutes 30`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/spawn.js';

/**
 * lock is the sqlite3 shell holding BEGIN EXCLUSIVE (degraded mode and recovery). corrupt is left
 * to the long run (`npm run soak -- --minutes 30 --faults kill,stop,term,lock,corrupt`): one
 * corruption is all a minute holds. lock was out of this test from seed 572555440 until its cause
 * and that of seed 573612072 were found and fixed (fb760d7, aa8d7ef); the 12 60-second runs with
 * it after that all passed (README, "How the guarantee is tested under faults").
 */
const FAULTS = 'kill,stop,term,lock';

/**
 * 60 s at 15 files/s (900 files), a fault every 4 s on average (about 15). Why so few files:
 * a daemon spends about 28 ms of CPU per file with a command handler (measured: 14.2 s of CPU
 * for 500 files, most of it in spawn()), and all three watch every file, so two shared cores
 * keep up with a few dozen files a second at most; at 20/s on the loaded development box the
 * drain alone took 76 s. `npm run soak -- --minutes 30` is the long run.
 */
const ARGS = ['--seconds', '60', '--rate', '15', '--fault-every', '4', '--faults', FAULTS, '--no-build', '--quiet'];
const LIMIT_MS = 200_000;

describe('chaos soak (CI size)', () => {
  it(
    'three daemons under kill, stop, term and lock faults: nothing lost, nothing completed twice, no overlap, every after-action once',
    async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts/soak/run.ts'), ...ARGS], {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group: on a timeout the soak and its daemons go together.
        detached: true,
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => {
        err += b.toString();
        if (err.length > 200_000) err = err.slice(-100_000);
      });
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, LIMIT_MS);
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      clearTimeout(timer);
      const summary = out.split('\n').find((l) => l.startsWith('soak: ')) ?? '(no summary line)';
      console.log(summary);
      expect(code, `${summary}\n${err.slice(-30_000)}`).toBe(0);
    },
    LIMIT_MS + 10_000,
  );
});
