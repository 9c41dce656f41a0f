import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { pidExists } from '../../src/pid-exists.js';

describe('pidExists (the one liveness check)', () => {
  it('a running child exists; once it has exited and been collected, it does not', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    const pid = child.pid!;
    expect(pidExists(pid)).toBe(true);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(pidExists(pid)).toBe(false);
  });

  it('this process and pid 1 exist (another user\'s process counts: EPERM is alive)', () => {
    expect(pidExists(process.pid)).toBe(true);
    expect(pidExists(1)).toBe(true);
  });

  it('0, negative and non-integer pids never exist (kill(0) would ask about the whole group)', () => {
    for (const p of [0, -1, -process.pid, 1.5, Number.NaN]) expect(pidExists(p)).toBe(false);
  });
});
