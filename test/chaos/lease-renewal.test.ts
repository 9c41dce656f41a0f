/**
 * Lease renewals against a real SQLite file locked by the real sqlite3 shell.
 *
 * A renewal that fails (the database locked longer than lockTimeoutMs) used to wait for the next
 * regular renewal, a third of the lease later: two such failures in a row and the lease ran out
 * under a worker that was alive and well. It is now tried again after half a second. (The
 * daemon's fallback store turns a locked database into degraded mode instead of an error; a
 * library user of SqliteStore, and PostgreSQL, get the error and rely on this retry.)
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BUSY_WAIT_SLICE_MS } from '../../src/daemon.js';
import type { Handler } from '../../src/run/handler.js';
import { Runner } from '../../src/run/runner.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { fingerprintOf } from '../../src/file-identity.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  cleanupTmpDirs();
});

function dueAtOf(db: string, file: string): { status: string; due: number | null } {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const r = d.prepare('SELECT status, due_at FROM file_checkpoints WHERE file_url = ?').get(file) as { status: string; due_at: string | null };
    return { status: r.status, due: r.due_at === null ? null : Date.parse(r.due_at) };
  } finally {
    d.close();
  }
}

/** The sqlite3 shell takes the write lock and sits on it until released. */
async function holdWriteLock(db: string): Promise<{ release: () => Promise<void> }> {
  const sh: ChildProcessWithoutNullStreams = spawn('sqlite3', [db]);
  let out = '';
  sh.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((r) => sh.on('close', () => r()));
  sh.stdin.write(".timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'LOCKED';\n");
  await waitFor(() => out.includes('LOCKED'), { message: 'the sqlite3 shell did not get the lock' });
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    sh.stdin.end('COMMIT;\n.quit\n');
    await exited;
  };
  cleanups.push(release);
  return { release };
}

describe('lease renewals', () => {
  it("while another process holds the database lock, the daemon's writes do not block the event loop for seconds (renewals stay on time)", async () => {
    const dir = tmpDir('ckpt-busy-');
    const db = path.join(dir, 'ckpt.db');
    // As the daemon opens it: short synchronous busy waits, asynchronous retries up to lockTimeoutMs.
    const store = new SqliteStore(db, { lockTimeoutMs: 1_500, busyTimeoutMs: BUSY_WAIT_SLICE_MS });
    cleanups.push(() => store.close());
    await store.discover([{ fileUrl: '/in/a.csv', fileType: 'in', mtimeMs: 0, size: 1, fingerprint: '1:0:1:1' }], Date.now());
    await holdWriteLock(db);
    // A busy daemon has several writes in flight at once (renewal, completions, claim, discovery,
    // handler pids). Each waits its slice synchronously, one after the other.
    let maxLateMs = 0;
    let due = performance.now() + 20;
    const tick = setInterval(() => {
      const now = performance.now();
      maxLateMs = Math.max(maxLateMs, now - due);
      due = now + 20;
    }, 20);
    try {
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => store.heartbeat([{ fileUrl: '/in/a.csv', token: 't' }], 1_000, Date.now())));
      expect(results.every((r) => r.status === 'rejected'), 'the writes should give up after lockTimeoutMs').toBe(true);
    } finally {
      clearInterval(tick);
    }
    // 250 ms slices blocked it for about 2 s here; 20 ms slices for about 0.2 s.
    expect(Math.round(maxLateMs)).toBeLessThan(1_000);
  });

  it('a renewal that failed because the database was locked is tried again soon, not a third of the lease later', async () => {
    const dir = tmpDir('ckpt-renew-');
    const inbox = path.join(dir, 'inbox');
    fs.mkdirSync(inbox);
    const db = path.join(dir, 'ckpt.db');
    const store = new SqliteStore(db, { lockTimeoutMs: 300, busyTimeoutMs: 0 });
    cleanups.push(() => store.close());
    const file = path.join(inbox, 'a.csv');
    fs.writeFileSync(file, 'a\n');
    const st = fs.lstatSync(file);
    await store.discover([{ fileUrl: file, fileType: 'inbox', mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) }], Date.now());

    let finish: () => void = () => undefined;
    const finished = new Promise<void>((r) => (finish = r));
    // Runs until told to finish (or until the runner aborts it).
    const handler: Handler = async (ctx) => {
      await Promise.race([finished, new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }))]);
      return ctx.signal.aborted ? { ok: false, permanent: false, kind: 'aborted', error: 'aborted', durationMs: 1 } : { ok: true, stats: null, durationMs: 1 };
    };
    const lines: { msg?: string; leftMs?: number }[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg?: string }) });
    const LEASE = 12_000;
    const EVERY = LEASE / 3;
    const runner = new Runner({
      store,
      handler,
      workerId: 'test:1',
      host: 'test',
      concurrency: 1,
      leaseMs: LEASE,
      folders: [{ dir: inbox, readyMarker: null }],
      onSuccess: 'keep',
      onDead: 'keep',
      logger,
    });
    cleanups.push(async () => {
      finish();
      await runner.stop(0);
    });
    runner.start();
    const claimed = await waitFor(() => {
      const r = dueAtOf(db, file);
      return r.status === 'processing' && r.due !== null ? r : null;
    });
    const claimedAt = claimed.due! - LEASE;

    // Locked from now until the first regular renewal (at a third of the lease) has failed.
    const lock = await holdWriteLock(db);
    await waitFor(() => lines.some((l) => l.msg === 'lease renewal failed'), { timeoutMs: EVERY + 10_000, message: 'the renewal never failed' });
    await lock.release();
    const releasedAt = Date.now();

    // The next regular renewal would come at 2/3 of the lease: the retry must come well before.
    const deadline = claimedAt + 2 * EVERY - 1_000;
    const extended = await waitFor(
      () => {
        const r = dueAtOf(db, file);
        return r.due !== null && r.due > claimed.due! ? r : null;
      },
      { timeoutMs: Math.max(0, deadline - Date.now()), intervalMs: 50 },
    ).catch(() => null);
    expect(extended, `the lease was not renewed by ${deadline - claimedAt} ms after the claim, although the lock was released at ${releasedAt - claimedAt} ms`).not.toBeNull();
    expect(extended!.status).toBe('processing');
    finish();
    await waitFor(() => dueAtOf(db, file).status === 'completed');
  }, 40_000);
});
