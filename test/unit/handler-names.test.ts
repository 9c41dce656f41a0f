/**
 * Hostile file names reach a command handler as ONE argument, byte for byte: spawn with an
 * argv array and no shell, so nothing in a name is ever read as syntax.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../src/run/handler.js';
import { HOSTILE_NAMES } from '../fixtures/handlers/hostile-names.js';
import { makeContext } from '../fixtures/handlers/make-context.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

const FIX = path.resolve(import.meta.dirname, '../fixtures/handlers');

let dir: string;
let sub: string;
let outDir: string;

beforeAll(() => {
  dir = tmpDir();
  // The folder name is hostile too.
  sub = path.join(dir, 'in $(folder) `x`; ok');
  fs.mkdirSync(sub);
  outDir = tmpDir();
});

afterAll(() => cleanupTmpDirs());

describe('hostile file names arrive as one byte-identical argument', () => {
  it('the 240-byte names really are 240 bytes', () => {
    for (const [label, name] of HOSTILE_NAMES.filter(([l]) => l.startsWith('240'))) {
      expect(Buffer.byteLength(name), label).toBe(240);
    }
  });

  for (const [label, name] of HOSTILE_NAMES) {
    it(label, async () => {
      const file = path.join(sub, name);
      fs.writeFileSync(file, 'data\n');
      const out = path.join(outDir, `out-${HOSTILE_NAMES.findIndex(([l]) => l === label)}`);
      const h = await createHandler({ command: [process.execPath, path.join(FIX, 'record-argv.mjs'), '{path}', out], cwd: outDir });
      const ctx = makeContext(file);
      const o = await h(ctx);
      expect(o, JSON.stringify(o)).toMatchObject({ ok: true });
      expect(fs.readFileSync(out).equals(Buffer.from(file, 'utf8'))).toBe(true);
      const report = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')) as { args: string[]; env: Record<string, string> };
      expect(report.args).toEqual([file, out]);
      expect(report.env.CKPT_FILE).toBe(file);
    });
  }

  it('nothing in any name was executed', () => {
    for (const d of [dir, sub, outDir, process.cwd()]) {
      expect(fs.existsSync(path.join(d, 'PWNED')), d).toBe(false);
    }
  });
});
