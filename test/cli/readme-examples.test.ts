/**
 * README examples of the form
 *
 *   ```text
 *   $ ckpt run --config bad.json
 *   bad.json: concurrency: expected an integer >= 1, got "four"
 *   ```
 *
 * run for real and compared with what ckpt prints. The convention:
 * - A block shows one or more commands, each on a line starting with `$ ckpt `, followed by the
 *   lines it prints (stdout and stderr together, in the order printed) up to the next `$ ` line
 *   or the end of the block.
 * - A command is checked when it is a key of EXAMPLES below. Its entry says what it needs: the
 *   files to create in an empty temp folder (the command runs there), the exit code, and the
 *   folder the README shows in place of that temp folder, if the output names it (`shownAs`).
 *   The output must then equal the README's lines exactly.
 * - An EXAMPLES entry whose command line is no longer in the README fails, so text and test
 *   cannot drift apart. Outputs with times or counters that change from run to run need a
 *   `normalize` step before they can be listed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { allBlocks, readme } from '../helpers/readme.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { cliEntry, exec, killAll } from './cli-helper.js';

afterEach(() => {
  killAll();
  cleanupTmpDirs();
});

interface Example {
  /** Files to create, path relative to the temp folder -> content; a path ending in / is a folder. */
  files: Record<string, string>;
  exitCode: number;
  /** The folder the README shows where the real output has the temp folder. */
  shownAs?: string;
  /** For output that changes from run to run (times, pids): applied to both sides. */
  normalize?: (text: string) => string;
}

const EXAMPLES: Record<string, Example> = {
  'ckpt run --config bad.json': {
    files: {
      'inbox/': '',
      'bad.json': JSON.stringify({ database: 'ckpt.db', watch: [{ dir: 'inbox' }], handler: { command: ['true'] }, concurrency: 'four' }),
    },
    exitCode: 78,
  },
  'ckpt init ckpt': { files: {}, exitCode: 0, shownAs: '/srv' },
  'ckpt validate --config bad.json': {
    files: {
      'srv/orders/': '',
      'bad.json': JSON.stringify({
        database: 'state/ckpt.db',
        watch: [{ dir: 'srv/orders', poll: 'sometimes' }],
        handler: { command: ['./load.sh', '{path}'] },
        concurrency: 'four',
        retry: { maxRetries: -1 },
      }),
    },
    exitCode: 78,
  },
};

interface ShownCommand {
  command: string;
  output: string;
  /** README line of the `$ ` line. */
  line: number;
}

/** Every `$ ckpt ...` command shown in the markdown's fenced blocks, with the output shown under it. */
function shownCommands(markdown: string): ShownCommand[] {
  const out: ShownCommand[] = [];
  for (const b of allBlocks(markdown)) {
    const lines = b.body.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i]!.startsWith('$ ckpt ')) continue;
      const output: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !lines[j]!.startsWith('$ '); j++) output.push(lines[j]!);
      out.push({ command: lines[i]!.slice(2).trim(), output: trimEnd(output).join('\n'), line: b.line + 1 + i });
      i = j - 1;
    }
  }
  return out;
}

function trimEnd(lines: string[]): string[] {
  const l = [...lines];
  while (l.length > 0 && l[l.length - 1]!.trim() === '') l.pop();
  return l;
}

/** Runs `ckpt ARGS` in `cwd` with stdout and stderr in one pipe, as a terminal would show them. */
async function runShown(command: string, cwd: string): Promise<{ code: number | null; output: string }> {
  const args = command.split(/\s+/).slice(1);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CKPT_') && k !== 'NOTIFY_SOCKET') env[k] = v;
  const r = await exec('sh', ['-c', 'exec "$@" 2>&1', 'sh', process.execPath, ...cliEntry(), ...args], { cwd, env });
  return { code: r.code, output: r.stdout };
}

describe('README examples of ckpt commands', () => {
  it('shownCommands() reads commands and their output from fenced blocks', () => {
    const md = ['text', '```text', '$ ckpt a --x', 'one', 'two', '', '$ ckpt b', '```', '```sh', 'ckpt c', '```', '```', '$ ckpt d', '```'].join('\n');
    expect(shownCommands(md)).toEqual([
      { command: 'ckpt a --x', output: 'one\ntwo', line: 3 },
      { command: 'ckpt b', output: '', line: 7 },
      { command: 'ckpt d', output: '', line: 13 },
    ]);
  });

  const shown = shownCommands(readme());
  for (const [command, ex] of Object.entries(EXAMPLES)) {
    it(`$ ${command}`, async () => {
      const inReadme = shown.filter((s) => s.command === command);
      expect(inReadme.length, `README.md shows "$ ${command}" (else remove it from EXAMPLES)`).toBeGreaterThan(0);
      for (const s of inReadme) {
        const dir = tmpDir('ckpt-readme-');
        for (const [name, content] of Object.entries(ex.files)) {
          const p = path.join(dir, name);
          fs.mkdirSync(name.endsWith('/') ? p : path.dirname(p), { recursive: true });
          if (!name.endsWith('/')) fs.writeFileSync(p, content);
        }
        const r = await runShown(command, dir);
        const norm = ex.normalize ?? ((t: string) => t);
        let real = trimEnd(r.output.split('\n')).join('\n');
        if (ex.shownAs !== undefined) real = real.split(dir).join(ex.shownAs);
        expect(norm(real), `README.md line ${s.line}: "$ ${command}"`).toBe(norm(s.output));
        expect(r.code, real).toBe(ex.exitCode);
      }
    });
  }
});
