/**
 * Runs the real `ckpt` executable as a child process.
 *
 * Which build: dist/cli/main.js when dist is at least as new as every source file (as after
 * `npm test`, which builds first), else src/cli/main.ts under tsx. Same code either way; dist
 * starts about 3x faster (measured on the 2-core box: `ckpt status` 0.57 s from dist, 1.5 s
 * under tsx). CKPT_TEST_CLI=tsx or =dist forces one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type ChildProcess, spawn } from 'node:child_process';
import { REPO, killChildren, type Ran } from '../helpers/spawn.js';

function newestMtime(dir: string, ext: string): { newest: number; files: string[] } {
  let newest = 0;
  const files: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith(ext) || entry.name.endsWith('.d.ts')) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.push(file);
    newest = Math.max(newest, fs.statSync(file).mtimeMs);
  }
  return { newest, files };
}

/** True when every src/**\/*.ts has a dist/**\/*.js at least as new. */
function distIsFresh(): boolean {
  const src = path.join(REPO, 'src');
  const dist = path.join(REPO, 'dist');
  if (!fs.existsSync(path.join(dist, 'cli', 'main.js'))) return false;
  for (const file of newestMtime(src, '.ts').files) {
    const out = path.join(dist, path.relative(src, file)).replace(/\.ts$/, '.js');
    try {
      if (fs.statSync(out).mtimeMs < fs.statSync(file).mtimeMs) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Runs a program to completion with stdin closed (helpers/spawn.ts's run() writes to a stdin
 * pipe, which fails with an uncaught EPIPE when the program exits before reading it).
 * killAll() in afterEach stops whatever a failed test left running.
 */
export function exec(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { cwd: opts.cwd ?? REPO, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    running.add(child);
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const running = new Set<ChildProcess>();

/** Kills every child started by exec() (and by helpers/spawn.ts) that is still running. */
export function killAll(): void {
  for (const c of running) c.kill('SIGKILL');
  running.clear();
  killChildren();
}

let chosen: string[] | null = null;

/** node arguments that start the CLI (before the CLI's own arguments). */
export function cliEntry(): string[] {
  if (chosen !== null) return chosen;
  const force = process.env.CKPT_TEST_CLI;
  const useDist = force === 'dist' || (force !== 'tsx' && distIsFresh());
  // tsx by absolute URL: the children run in temp folders, where a bare "tsx" does not resolve.
  const tsx = pathToFileURL(path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  chosen = useDist ? [path.join(REPO, 'dist', 'cli', 'main.js')] : ['--import', tsx, path.join(REPO, 'src', 'cli', 'main.ts')];
  return chosen;
}

export interface CliRun extends Ran {
  json<T = unknown>(): T;
}

/** `ckpt ARGS...` in `cwd`, with CKPT_* variables removed from the environment unless given. */
export async function ckpt(args: readonly string[], opts: { cwd: string; env?: Record<string, string> }): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CKPT_') && k !== 'NOTIFY_SOCKET') env[k] = v;
  Object.assign(env, opts.env ?? {});
  const r = await exec(process.execPath, [...cliEntry(), ...args], { cwd: opts.cwd, env });
  return {
    ...r,
    json<T>() {
      return JSON.parse(r.stdout) as T;
    },
  };
}
