/**
 * Readiness from kernel events (native inotify): real daemons, real files, real writers.
 * With the native part on, a file is handed on when its writer closes it or when it is renamed
 * into the folder; with CKPT_NATIVE=0, today's stability timer, and the log says which.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countStatus, killDaemons, records, setup, started, startDaemon } from '../helpers/daemon.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

/** Whatever this process's CKPT_NATIVE says: these daemons run with the native part (CI builds it). */
const NATIVE_ON = { CKPT_NATIVE: '1' };
const SLOW_WRITER = path.join(REPO, 'test/fixtures/daemon/slow-writer.mjs');

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

/** Runs the slow writer to its end: first half, a pause with the file open, second half, close. */
function writeSlowly(file: string, pauseMs: number, half: number): Promise<number | null> {
  const w = spawn(process.execPath, [SLOW_WRITER, file, String(pauseMs), String(half)], { stdio: 'ignore' });
  return new Promise((resolve) => w.on('exit', (code) => resolve(code)));
}

describe('readiness from kernel events', () => {
  it('a writer that pauses 5 s mid-file (stableMs 1 s): the handler only ever sees the whole file', async () => {
    const s = setup({ stableMs: 1_000 });
    const d = startDaemon(s, [], NATIVE_ON);
    await started(d);
    expect(d.lines.find((l) => l.msg === 'watching folder')).toMatchObject({ readiness: 'kernel-events' });
    const file = path.join(s.inbox, 'upload.bin');
    expect(await writeSlowly(file, 5_000, 1000)).toBe(0);
    await waitFor(() => countStatus(s.db, 'completed') === 1, { timeoutMs: 20_000 });
    const starts = records(s).filter((r) => r.ev === 'start');
    expect(starts.map((r) => r.size)).toEqual([2000]);
    expect(d.lines.find((l) => l.msg === 'file ready' && l.path === file)).toMatchObject({ readiness: 'closed' });
  }, 40_000);

  it('a file renamed into the folder is ready at once, without waiting stableMs', async () => {
    // stableMs of 10 minutes: a file handed on within the test went by the rename, not the timer.
    const s = setup({ stableMs: 600_000 });
    const d = startDaemon(s, [], NATIVE_ON);
    await started(d);
    const tmp = path.join(s.dir, 'report.csv.part');
    fs.writeFileSync(tmp, 'a,b\n1,2\n');
    const file = path.join(s.inbox, 'report.csv');
    fs.renameSync(tmp, file);
    await waitFor(() => countStatus(s.db, 'completed') === 1, { timeoutMs: 20_000 });
    expect(d.lines.find((l) => l.msg === 'file ready' && l.path === file)).toMatchObject({ readiness: 'renamed-in' });
    expect(records(s).filter((r) => r.ev === 'start').map((r) => r.size)).toEqual([8]);
  }, 40_000);

  it('a file already there at start-up goes by the stability timer', async () => {
    const s = setup({ stableMs: 300 });
    const file = path.join(s.inbox, 'early.csv');
    fs.writeFileSync(file, 'x\n');
    const d = startDaemon(s, [], NATIVE_ON);
    await started(d);
    await waitFor(() => countStatus(s.db, 'completed') === 1, { timeoutMs: 20_000 });
    expect(d.lines.find((l) => l.msg === 'file ready' && l.path === file)).toMatchObject({ readiness: 'stable' });
  }, 40_000);

  it('CKPT_NATIVE=0: the stability timer and the spawn helper, said once in the log; files are still handled', async () => {
    const s = setup({ stableMs: 300 });
    const d = startDaemon(s, [], { CKPT_NATIVE: '0' });
    await started(d);
    expect(d.lines.filter((l) => l.msg?.toString().startsWith('native part not in use'))).toHaveLength(1);
    expect(d.lines.find((l) => l.msg === 'watching folder')).toMatchObject({ readiness: 'stability' });
    expect(d.lines.find((l) => l.msg === 'ckpt running')).toMatchObject({ native: false });
    const file = path.join(s.inbox, 'late.csv');
    fs.writeFileSync(file, 'x\n');
    await waitFor(() => countStatus(s.db, 'completed') === 1, { timeoutMs: 20_000 });
    expect(d.lines.find((l) => l.msg === 'file ready' && l.path === file)).toMatchObject({ readiness: 'stable' });
    expect(d.lines.filter((l) => l.msg?.toString().startsWith('native part not in use'))).toHaveLength(1);
  }, 40_000);
});
