/**
 * A real terminal for tests: a tmux server on a socket of its own (never the user's), one
 * detached session of a given size running a shell, keys typed with `send-keys`, the screen
 * read with `capture-pane -p` (what a person would see: the visible pane, no scrollback).
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { waitFor } from './wait.js';

export function hasTmux(): boolean {
  return spawnSync('tmux', ['-V']).status === 0;
}

/** The shell's prompt in the pane: the screen shows it again once a program has quit. */
export const PROMPT = 'shell$ ';

const servers = new Set<Tmux>();

export class Tmux {
  readonly socket = `ckpt-test-${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly target = 'test';

  /** A session of `cols` x `rows` running `sh` in `cwd`. */
  constructor(cwd: string, cols: number, rows: number, env: Record<string, string> = {}) {
    // -f /dev/null: none of the user's settings; the environment is the test's own.
    this.tmux(['-f', '/dev/null', 'new-session', '-d', '-s', this.target, '-x', String(cols), '-y', String(rows), '-c', cwd,
      'env', `PS1=${PROMPT}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'sh']);
    servers.add(this);
  }

  private tmux(args: string[]): string {
    const r = spawnSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tmux ${args[0]}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * Type a command at the shell's prompt and press Enter. Waits for the prompt first: keys typed
   * before the shell is ready are echoed by the terminal ahead of the prompt.
   */
  async typeLine(text: string): Promise<void> {
    await this.waitForScreen((t) => t.includes(PROMPT.trimEnd()), 'the shell prompt');
    this.tmux(['send-keys', '-t', this.target, '-l', text]);
    this.tmux(['send-keys', '-t', this.target, 'Enter']);
  }

  /** Press keys by tmux's names (`q`, `C-c`). */
  press(...keys: string[]): void {
    this.tmux(['send-keys', '-t', this.target, ...keys]);
  }

  /** The visible screen, one string per row (trailing blanks trimmed, as tmux prints them). */
  screen(): string[] {
    return this.tmux(['capture-pane', '-p', '-t', this.target]).replace(/\n$/, '').split('\n');
  }

  resize(cols: number, rows: number): void {
    this.tmux(['resize-window', '-t', this.target, '-x', String(cols), '-y', String(rows)]);
  }

  /** Poll the screen until `pred` holds; the last screen is in the error otherwise. */
  async waitForScreen(pred: (text: string, lines: string[]) => boolean, message: string, timeoutMs = 20_000): Promise<string> {
    let last: string[] = [];
    try {
      return await waitFor(() => {
        last = this.screen();
        const text = last.join('\n');
        return pred(text, last) ? text : null;
      }, { timeoutMs, intervalMs: 100, message });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${last.join('\n')}`);
    }
  }

  /** Stop the server and remove its socket file (tmux leaves it behind). */
  kill(): void {
    servers.delete(this);
    const where = spawnSync('tmux', ['-L', this.socket, 'display-message', '-p', '#{socket_path}'], { encoding: 'utf8' }).stdout.trim();
    spawnSync('tmux', ['-L', this.socket, 'kill-server']);
    if (where !== '') fs.rmSync(where, { force: true });
  }
}

/** Kill every tmux server a test started (afterEach). */
export function killTmuxServers(): void {
  for (const t of [...servers]) t.kill();
}
