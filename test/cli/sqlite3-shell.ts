/**
 * The real sqlite3 shell (Debian's 3.40 here, older than the SQLite inside better-sqlite3), for
 * one-off queries and for an interactive session that holds a transaction open.
 */
import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import type { Ran } from '../helpers/spawn.js';
import { waitFor } from '../helpers/wait.js';

export function hasSqlite3(): boolean {
  return spawnSync('sqlite3', ['-version']).status === 0;
}

const sessions = new Set<ChildProcess>();

/**
 * `sqlite3 -readonly -bail -header -csv DB SQL`, stdin closed from the start: the shell reads
 * no input when given SQL, and may exit before a stdin pipe could be written (EPIPE).
 */
export function query(db: string, sql: string, mode: '-csv' | '-box' = '-csv'): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn('sqlite3', ['-readonly', '-bail', '-header', mode, db, sql], { stdio: ['ignore', 'pipe', 'pipe'] });
    sessions.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      sessions.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** CSV output (no quoted commas in the values the tests read) as rows of cells. */
export function csvRows(stdout: string): string[][] {
  return stdout.trimEnd().split('\n').filter((l) => l !== '').map((l) => l.split(','));
}

/** An interactive shell; send() runs statements and resolves with what they printed. */
export class ShellSession {
  private out = '';
  private n = 0;
  readonly child: ChildProcessWithoutNullStreams;

  constructor(db: string) {
    this.child = spawn('sqlite3', ['-readonly', '-batch', '-csv', db]);
    sessions.add(this.child);
    this.child.stdout.on('data', (d: Buffer) => (this.out += d.toString()));
    this.child.stderr.on('data', (d: Buffer) => (this.out += `STDERR:${d.toString()}`));
    this.child.on('close', () => sessions.delete(this.child));
    // A shell that died shows up as a send() that gets no answer; no uncaught EPIPE on top.
    this.child.stdin.on('error', () => undefined);
  }

  async send(sql: string): Promise<string> {
    const mark = `--mark-${++this.n}--`;
    const from = this.out.length;
    this.child.stdin.write(`${sql}\nSELECT '${mark}';\n`);
    await waitFor(() => this.out.includes(mark), { message: `sqlite3 did not answer: ${sql}` });
    return this.out.slice(from, this.out.indexOf(mark, from)).trim();
  }

  async quit(): Promise<number | null> {
    const closed = new Promise<number | null>((r) => this.child.once('close', (code) => r(code)));
    this.child.stdin.end('.quit\n');
    return closed;
  }
}

export function killShells(): void {
  for (const c of sessions) c.kill('SIGKILL');
  sessions.clear();
}
