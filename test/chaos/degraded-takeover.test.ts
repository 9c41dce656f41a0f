/**
 * Reproduction of what the soak found with the lock fault (seed 547234732, f0000124): a daemon
 * whose completion could not be written (the sqlite3 shell held the write lock) went degraded
 * and finished the file from memory: journal, "completed", moved to done/. Meanwhile its lease
 * in the database ran out, and once the lock was gone another daemon, in normal mode, took the
 * claim over, found the file gone and recorded it dead ("file vanished before it was handled").
 * The ledger then says dead for a file that was handled and moved, and the taken-over worker
 * changed something after losing its claim.
 *
 * Expected: one of the two outcomes, consistently: either the degraded worker does not complete
 * (its lease ran out: it no longer holds the file), or its completion stands and the other
 * worker does not take the file over. Either way the row must end completed or pending, never
 * dead/vanished with the file sitting in done/.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { drop, killDaemons, rows, setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { chaosCommand, chaosRecords, filesUnder } from './support.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});


describe('degraded mode and lease takeover', () => {
  // Was a known bug (issue 7): the degraded worker completed from memory after its database
  // lease ran out, and a normal-mode worker's sweep took the claim over and recorded the moved
  // file dead (vanished). Fixed by fencing (src/store/fallback/fencing.ts): an outcome counts only
  // if its claim marker was written while the lease held, and the sweep leaves such claims alone.
  it('a worker that went degraded while its lease ran out does not leave a handled file recorded dead', async () => {
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 1, leaseMs: 1_500, lockTimeoutMs: 800 });
    const a = startDaemon(s);
    const b = startDaemon(s);
    await Promise.all([started(a), started(b)]);
    const file = drop(s.inbox, 'f.csv', 'sleep 300\nid F\n');
    await waitFor(() => chaosRecords(s.recordLog).some((r) => r.ev === 'start' && r.id === 'F'));
    // The handler is running: an operator's sqlite3 session takes the write lock for 4 s, longer
    // than the lease, so the completion cannot be written and the lease cannot be renewed.
    const sh = spawn('sqlite3', [s.db], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    sh.stdout.on('data', (x: Buffer) => (out += x.toString()));
    sh.stdin.write(".timeout 5000\nBEGIN EXCLUSIVE;\nSELECT 'LOCKED';\n");
    await waitFor(() => out.includes('LOCKED'));
    await new Promise((r) => setTimeout(r, 4_000));
    sh.stdin.end('COMMIT;\n.quit\n');
    await waitFor(() => ['completed', 'dead'].includes(statusOf(s.db, file) ?? ''), { timeoutMs: 20_000 });
    // Let both daemons settle (journal replay, probes).
    await new Promise((r) => setTimeout(r, 3_000));
    const state = {
      status: statusOf(s.db, file),
      inDone: filesUnder(path.join(s.dir, 'done')).map((p) => path.basename(p)),
      inInbox: fs.existsSync(file),
      attempts: rows(s.db, 'SELECT attempt, outcome, error_message FROM file_attempts ORDER BY id').map((r) => `${String(r.attempt)} ${String(r.outcome)} ${String(r.error_message ?? '').split('\n')[0]}`),
    };
    expect(state.status === 'dead' && state.inDone.length > 0, JSON.stringify(state, null, 2)).toBe(false);
    expect(state.inDone.length + (state.inInbox ? 1 : 0), JSON.stringify(state, null, 2)).toBe(1);
  });
});
