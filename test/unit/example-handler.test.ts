/**
 * scripts/example-handler.mjs as ckpt runs it: a real child process on real files, judged by
 * its exit code and the last line of its stdout.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const HANDLER = fileURLToPath(new URL('../../scripts/example-handler.mjs', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function run(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [HANDLER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

function file(content: string | Buffer, name = 'in.csv'): string {
  const p = path.join(tmpDir('ckpt-handler-'), name);
  fs.writeFileSync(p, content);
  return p;
}

/** The stats from the last stdout line; also checks the line is exactly that object. */
function stats(r: Run): { total: number; filtered: number; persisted: number } {
  const last = r.stdout.trimEnd().split('\n').at(-1) ?? '';
  expect(last).toMatch(/^\{"total":\d+,"filtered":\d+,"persisted":\d+\}$/);
  return JSON.parse(last) as { total: number; filtered: number; persisted: number };
}

describe('counting rows', () => {
  it.each([
    ['header only', 'a,b,c\n', { total: 0, filtered: 0, persisted: 0 }],
    ['empty file', '', { total: 0, filtered: 0, persisted: 0 }],
    ['plain rows', 'a,b\n1,2\n3,4\n', { total: 2, filtered: 0, persisted: 2 }],
    ['no final newline', 'a,b\n1,2\n3,4', { total: 2, filtered: 0, persisted: 2 }],
    ['CRLF line ends', 'a,b\r\n1,2\r\n3,4\r\n', { total: 2, filtered: 0, persisted: 2 }],
    ['empty and short rows are filtered', 'a,b,c\n1,2,3\n\n4,5\n6,7,8,9\n', { total: 4, filtered: 3, persisted: 1 }],
    ['quoted commas, quotes and line breaks', 'a,b\n"x,y",1\n"say ""hi""",2\n"two\nlines",3\n', { total: 3, filtered: 0, persisted: 3 }],
    ['stray and unclosed quotes are malformed', 'a,b\nab"c,1\n"ab"c,2\n"never closed,3\n', { total: 3, filtered: 3, persisted: 0 }],
    ['a byte-order mark is not part of the header', '\uFEFFa,b\n1,2\n', { total: 1, filtered: 0, persisted: 1 }],
  ])('%s', async (_name, content, expected) => {
    const r = await run(file(content));
    expect(r.code).toBe(0);
    expect(stats(r)).toEqual(expected);
  });

  it('streams a large file with multi-byte characters split across read chunks', async () => {
    const rows = 200_000;
    const lines = ['name,city,n'];
    for (let i = 0; i < rows; i++) lines.push(i % 1000 === 0 ? `bad row ${i}` : `Zoë ${i},Malmö,${i}`);
    const p = file(`${lines.join('\n')}\n`);
    expect(fs.statSync(p).size).toBeGreaterThan(4 * 1024 * 1024);
    const r = await run(p);
    expect(r.code).toBe(0);
    expect(stats(r)).toEqual({ total: rows, filtered: rows / 1000, persisted: rows - rows / 1000 });
  });
});

describe('exit codes', () => {
  it('65 for a file with NUL bytes (not text: dead at once)', async () => {
    const r = await run(file(Buffer.from('a,b\n1,\u0000\n', 'utf8')));
    expect(r.code).toBe(65);
    expect(r.stderr).toContain('NUL');
    expect(r.stdout).toBe('');
  });

  it('65 for invalid UTF-8', async () => {
    const r = await run(file(Buffer.from([0x61, 0x2c, 0x62, 0x0a, 0xff, 0xfe, 0x0a])));
    expect(r.code).toBe(65);
    expect(r.stderr).toContain('UTF-8');
  });

  it('1 for a file that is missing or a folder (retried)', async () => {
    const dir = tmpDir('ckpt-handler-');
    expect((await run(path.join(dir, 'gone.csv'))).code).toBe(1);
    expect((await run(dir)).code).toBe(1);
  });

  it('64 without an argument', async () => {
    const r = await run();
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('usage');
  });

  it('takes a name with spaces and shell characters as one argument', async () => {
    const r = await run(file('a\n1\n2\n', 'weird $(name) `x` ;.csv'));
    expect(r.code).toBe(0);
    expect(stats(r)).toEqual({ total: 2, filtered: 0, persisted: 2 });
  });
});
