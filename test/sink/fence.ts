/**
 * The late-worker case, shared by the SQLite and PostgreSQL sink tests: process A is stopped
 * (SIGSTOP) inside its sink transaction, B runs the same key meanwhile, A is continued.
 * Returns both results; exactly one may have applied.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { SinkResult } from '../../src/sink/common.js';
import { REPO } from '../helpers/spawn.js';
import { waitFor } from '../helpers/wait.js';

const WORKER = path.join(REPO, 'test/fixtures/sink/once-worker.ts');

interface Worker {
  child: ChildProcess;
  out: () => string;
  done: Promise<{ code: number | null; err: string }>;
}

export const workers = new Set<ChildProcess>();

function startWorker(kind: string, target: string, key: string, rows: number, pauseMs: number): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, kind, target, key, String(rows), String(pauseMs)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  workers.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<{ code: number | null; err: string }>((resolve) =>
    child.on('close', (code) => {
      workers.delete(child);
      resolve({ code, err });
    }),
  );
  return { child, out: () => out, done };
}

function resultOf(w: Worker): SinkResult {
  const line = w.out().split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no result from worker: ${w.out()}`);
  return JSON.parse(line) as SinkResult;
}

export async function lateWorker(kind: 'sqlite' | 'postgres', target: string, key: string, rows: number): Promise<{ a: SinkResult; b: SinkResult }> {
  const a = startWorker(kind, target, key, rows, 300);
  await waitFor(() => a.out().includes('writing'), { timeoutMs: 30_000, message: 'worker A inside its transaction' });
  a.child.kill('SIGSTOP');
  const b = startWorker(kind, target, key, rows, 0);
  // B is about to call once() and will wait there (for the write lock, or on A's uncommitted
  // key) while A is stopped.
  await waitFor(() => b.out().includes('ready'), { timeoutMs: 30_000, message: 'worker B started' });
  a.child.kill('SIGCONT');
  const [ea, eb] = await Promise.all([a.done, b.done]);
  if (ea.code !== 0 || eb.code !== 0) throw new Error(`worker failed: A ${ea.code} ${ea.err}\nB ${eb.code} ${eb.err}`);
  return { a: resultOf(a), b: resultOf(b) };
}
