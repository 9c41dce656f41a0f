/**
 * A module handler in a folder of its own, outside this checkout, run by the real daemon
 * (`ckpt run --once`): the README's example works as written (`import { PermanentError } from
 * 'ckpt'`), and a module that cannot load stops the daemon with exit 78 and one line.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/spawn.js';
import { readmeBlocks } from '../helpers/readme.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { ckpt, killAll } from '../cli/cli-helper.js';

afterEach(() => {
  killAll();
  cleanupTmpDirs();
});

/** A folder outside the checkout with inbox/ and a config naming `module`. */
function handlerFolder(module: string): string {
  const dir = tmpDir('ckpt-module-');
  expect(path.relative(REPO, dir).startsWith('..')).toBe(true);
  fs.mkdirSync(path.join(dir, 'inbox'));
  const config = { database: 'ckpt.db', watch: [{ dir: 'inbox' }], handler: { module }, stableMs: 50, retry: { maxRetries: 2, baseDelayMs: 10, maxDelayMs: 20 } };
  fs.writeFileSync(path.join(dir, 'ckpt.config.json'), JSON.stringify(config));
  return dir;
}

function rows(dir: string): unknown[] {
  const db = new Database(path.join(dir, 'ckpt.db'), { readonly: true });
  try {
    return db.prepare('SELECT file_url, status, attempts, records_total, error_message FROM file_checkpoints ORDER BY file_url').all();
  } finally {
    db.close();
  }
}

/**
 * Output lines, without the warning every run as root gets (the tests may run as root) and
 * without the `workerId` field that pretty output prints under each line.
 */
function outputLines(r: { stdout: string; stderr: string }): string[] {
  return `${r.stdout}${r.stderr}`.split('\n').filter((l) => l !== '' && !l.includes('running as root') && !/^\s+workerId: /.test(l));
}

describe('a module handler outside the checkout', () => {
  it("the README's handler.mjs, as written: imports PermanentError from 'ckpt'; a good file completes, a bad one is dead at once", async () => {
    const example = readmeBlocks('A JS/TS module').find((b) => b.lang === 'js' && b.body.startsWith('// handler.mjs'));
    expect(example, 'README: a ```js block starting "// handler.mjs" under "### A JS/TS module"').toBeDefined();
    const dir = handlerFolder('handler.mjs');
    fs.writeFileSync(path.join(dir, 'handler.mjs'), example!.body);
    fs.writeFileSync(path.join(dir, 'inbox', 'good.csv'), 'id,name\n1,a\n2,b\n');
    fs.writeFileSync(path.join(dir, 'inbox', 'empty.csv'), '\n');

    const r = await ckpt(['run', '--once', '--log-format', 'json'], { cwd: dir });
    expect(r.code, r.stdout + r.stderr).toBe(1); // some dead
    expect(rows(dir)).toEqual([
      { file_url: path.join(dir, 'inbox', 'empty.csv'), status: 'dead', attempts: 1, records_total: 0, error_message: expect.stringMatching(/^PermanentError: no header row/) },
      { file_url: path.join(dir, 'inbox', 'good.csv'), status: 'completed', attempts: 1, records_total: 2, error_message: null },
    ]);
  });

  it("a folder with a ckpt package of its own keeps it", async () => {
    const dir = handlerFolder('handler.mjs');
    const own = path.join(dir, 'node_modules', 'ckpt');
    fs.mkdirSync(own, { recursive: true });
    fs.writeFileSync(path.join(own, 'package.json'), JSON.stringify({ name: 'ckpt', type: 'module', exports: './index.js' }));
    fs.writeFileSync(path.join(own, 'index.js'), "export const copy = 'own';\n");
    fs.writeFileSync(path.join(dir, 'handler.mjs'), "import { copy } from 'ckpt';\nexport default () => { if (copy !== 'own') throw new Error(copy); };\n");
    fs.writeFileSync(path.join(dir, 'inbox', 'a.csv'), 'x\n');
    const r = await ckpt(['run', '--once', '--log-format', 'json'], { cwd: dir });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  const broken: [string, string, RegExp][] = [
    ['a syntax error', 'export default function () {\n  return {;\n}\n', /failed to load: SyntaxError: Unexpected token ';' \(.*handler\.mjs:2\)$/],
    ['a throw at load time', 'const x = 1;\nthrow new Error("no credentials");\nexport default () => x;\n', /failed to load: Error: no credentials \(.*handler\.mjs:2:7\)$/],
    ['an import that fails', 'import x from "no-such-package";\nexport default () => x;\n', /failed to load: Error: Cannot find package 'no-such-package' imported from .*handler\.mjs$/],
    ["a name 'ckpt' does not export", 'import { Nope } from "ckpt";\nexport default () => Nope;\n', /failed to load: SyntaxError: The requested module 'ckpt' does not provide an export named 'Nope' \(.*handler\.mjs:1\)$/],
    ['no default export', 'export const handle = () => 1;\n', /handler\.mjs must have a default export that is a function .*; its default export is missing$/],
  ];
  for (const [what, source, cause] of broken) {
    it(`${what}: exit 78 and one line naming the module and the cause`, async () => {
      const dir = handlerFolder('handler.mjs');
      fs.writeFileSync(path.join(dir, 'handler.mjs'), source);
      // Pretty, as on a terminal: a logged error object would print its stack under the line.
      const pretty = await ckpt(['run', '--once', '--log-format', 'pretty'], { cwd: dir });
      expect(pretty.code, pretty.stdout + pretty.stderr).toBe(78);
      expect(outputLines(pretty), pretty.stdout + pretty.stderr).toHaveLength(1);
      const json = await ckpt(['run', '--once', '--log-format', 'json'], { cwd: dir });
      expect(json.code).toBe(78);
      const lines = outputLines(json);
      expect(lines, json.stdout + json.stderr).toHaveLength(1);
      const line = JSON.parse(lines[0]!) as { msg: string; level: string };
      expect(line).toEqual(expect.not.objectContaining({ err: expect.anything() }));
      expect(line.level).toBe('fatal');
      expect(line.msg).toContain(`handler module ${path.join(dir, 'handler.mjs')}`);
      expect(line.msg).toMatch(cause);
    });
  }
});
