/**
 * TypeScript module handlers outside vitest (which compiles .ts itself): Node 20 loads them only
 * with the tsx loader registered; without it, createHandler must say how. The driver runs the
 * built handler code in dist/ (npm test builds it first) under plain `node`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FIX = path.join(ROOT, 'test/fixtures/handlers');
const HANDLER_JS = pathToFileURL(path.join(ROOT, 'dist/run/handler.js')).href;

let driver: string;

beforeAll(() => {
  const out = tmpDir();
  driver = path.join(out, 'driver.mjs');
  fs.writeFileSync(
    driver,
    `import { createHandler } from '${HANDLER_JS}';
const [, , mod, file] = process.argv;
const noop = () => {};
const logger = { info: noop, warn: noop, debug: noop, error: noop, child() { return this; } };
try {
  const h = await createHandler({ module: mod });
  const o = await h({ fileUrl: file, fileType: 't', attempt: 1, workerId: 'w', idempotencyKey: 'k', claimToken: 'c', signal: new AbortController().signal, logger });
  console.log(JSON.stringify(o));
} catch (err) {
  console.log(JSON.stringify({ loadError: err.message }));
}
`,
  );
});

afterAll(() => cleanupTmpDirs());

function run(args: string[]): Record<string, unknown> {
  const stdout = execFileSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
}

describe('TypeScript module handlers', () => {
  it('plain node: a clear error that says to register tsx', () => {
    const r = run([driver, path.join(FIX, 'module-typed.ts'), '/data/abcd.csv']);
    expect(r.loadError).toMatch(/is TypeScript.*node --import tsx/);
  });

  it('node --import tsx: the .ts handler loads and runs', () => {
    expect(spawnSync(process.execPath, ['--import', 'tsx', '-e', ''], { cwd: ROOT }).status, 'tsx loader not available').toBe(0);
    const r = run(['--import', 'tsx', driver, path.join(FIX, 'module-typed.ts'), '/data/abcd.csv']);
    expect(r).toMatchObject({ ok: true, stats: { total: 14, filtered: 0, persisted: 14 } });
  });

  it('plain node: .mjs handlers need nothing', () => {
    const r = run([driver, path.join(FIX, 'module-void.mjs'), '/data/abcd.csv']);
    expect(r).toMatchObject({ ok: true, stats: null });
  });
});
