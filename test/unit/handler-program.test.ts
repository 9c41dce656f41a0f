/**
 * checkProgram(): the program is looked up as execvp does, against real files and folders.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkProgram } from '../../src/run/handler-program.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(() => cleanupTmpDirs());

function exe(file: string, mode = 0o755): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode });
  fs.chmodSync(file, mode);
  return file;
}

describe('checkProgram', () => {
  it('a bare name: the first PATH entry with an executable file wins; a non-executable one before it is skipped', () => {
    const d = tmpDir('ckpt-prog-');
    exe(path.join(d, 'a', 'load'), 0o644);
    const good = exe(path.join(d, 'b', 'load'));
    expect(checkProgram('load', d, { PATH: `${d}/a:${d}/b` })).toEqual({ ok: true, program: 'load', resolved: good });
  });

  it('a bare name found only without the execute bit, or as a folder: says so for the first such entry', () => {
    const d = tmpDir('ckpt-prog-');
    exe(path.join(d, 'a', 'load'), 0o644);
    fs.mkdirSync(path.join(d, 'b', 'load'), { recursive: true });
    const r = checkProgram('load', d, { PATH: `${d}/missing:${d}/a:${d}/b` });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.why).toMatch(new RegExp(`^${d}/a/load is not executable by this user \\(uid \\d+; mode 644\\)$`));
    const folder = checkProgram('load', d, { PATH: `${d}/b` });
    expect(!folder.ok && folder.why).toBe(`${d}/b/load is a folder, not a program`);
  });

  it('an empty or relative PATH entry means the working folder, like execvp', () => {
    const d = tmpDir('ckpt-prog-');
    const here = exe(path.join(d, 'load'));
    const sub = exe(path.join(d, 'tools', 'conv'));
    expect(checkProgram('load', d, { PATH: `/nonexistent::/bin` })).toMatchObject({ ok: true, resolved: here });
    expect(checkProgram('conv', d, { PATH: 'tools' })).toMatchObject({ ok: true, resolved: sub });
  });

  it('a name with a slash is a path from the working folder; PATH is not searched', () => {
    const d = tmpDir('ckpt-prog-');
    const bin = exe(path.join(d, 'bin', 'load'));
    expect(checkProgram('bin/load', d, { PATH: '' })).toMatchObject({ ok: true, resolved: bin });
    expect(checkProgram('./load', d, { PATH: `${d}/bin` })).toEqual({ ok: false, program: './load', why: `${d}/load does not exist` });
  });

  it('not found anywhere names the PATH searched; a missing working folder is said first', () => {
    const d = tmpDir('ckpt-prog-');
    expect(checkProgram('nope', d, { PATH: '/nonexistent/a:/nonexistent/b' })).toEqual({ ok: false, program: 'nope', why: 'not found in PATH (/nonexistent/a:/nonexistent/b)' });
    expect(checkProgram('sh', path.join(d, 'gone'), { PATH: '/bin' })).toEqual({ ok: false, program: 'sh', why: `the handler's working folder ${path.join(d, 'gone')} does not exist` });
  });
});
