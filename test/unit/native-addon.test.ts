/**
 * The native part (native/ckpt_native.c): `npm ci` builds it (scripts/build-native.mjs), so a
 * fresh clone and CI load it; an install where it cannot be built still succeeds and says so.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAddon, nativeStatus } from '../../src/native/addon.js';
import { IN, Inotify, type RawEvent } from '../../src/native/inotify.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => cleanupTmpDirs());

describe('native part', () => {
  it('is built by npm ci and loads (unless CKPT_NATIVE=0 asks for the portable paths)', () => {
    if (process.env.CKPT_NATIVE === '0') {
      expect(nativeStatus()).toMatchObject({ addon: null, reason: 'disabled by CKPT_NATIVE=0' });
      return;
    }
    expect(nativeStatus().reason).toBeNull();
    expect(fs.existsSync(path.join(REPO, 'build/Release/ckpt_native.node'))).toBe(true);
  });

  it('an install where it cannot be built still succeeds, and says so', () => {
    const r = spawnSync(process.execPath, [path.join(REPO, 'scripts/build-native.mjs')], {
      env: { ...process.env, npm_config_node_gyp: path.join(tmpDir(), 'no-node-gyp.js') },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('ckpt: native part NOT built');
  });

  it('a build left from an older checkout (loads, but lacks a function ckpt calls) is refused whole, and the portable paths are used', () => {
    // A real addon that loads in this Node but has none of ckpt's functions: better-sqlite3's.
    const root = tmpDir();
    fs.mkdirSync(path.join(root, 'dist', 'native'), { recursive: true });
    fs.mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
    fs.copyFileSync(path.join(REPO, 'dist', 'native', 'addon.js'), path.join(root, 'dist', 'native', 'addon.js'));
    fs.copyFileSync(path.join(REPO, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'), path.join(root, 'build', 'Release', 'ckpt_native.node'));
    const probe = `const m = await import(${JSON.stringify(path.join(root, 'dist', 'native', 'addon.js'))}); console.log(JSON.stringify({ loaded: m.nativeAddon() !== null, reason: m.nativeStatus().reason }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, CKPT_NATIVE: '' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { loaded: boolean; reason: string };
    expect(out.loaded).toBe(false);
    expect(out.reason).toMatch(/out of date \(no inotifyOpen, .*spawnAsync, watchExit\); rebuild it with `npm run build:native`/);
  });

  it('inotify keeps the event kinds: a write then close, and a rename into the folder', async () => {
    const addon = nativeAddon();
    if (addon === null) return; // CKPT_NATIVE=0: covered by the first case
    const dir = tmpDir();
    const events: RawEvent[] = [];
    const ino = new Inotify(addon, (evs) => events.push(...(evs ?? [])));
    try {
      ino.add(dir);
      fs.writeFileSync(path.join(dir, 'a.csv'), 'x');
      fs.writeFileSync(path.join(dir, '..', 'b.part'), 'y');
      fs.renameSync(path.join(dir, '..', 'b.part'), path.join(dir, 'b.csv'));
      await waitFor(() => events.some((e) => e.name === 'b.csv'));
      const kinds = (name: string, bit: number) => events.filter((e) => e.name === name && (e.mask & bit) !== 0).length;
      expect(kinds('a.csv', IN.CREATE)).toBe(1);
      expect(kinds('a.csv', IN.OPEN)).toBe(1);
      expect(kinds('a.csv', IN.CLOSE_WRITE)).toBe(1);
      expect(kinds('b.csv', IN.MOVED_TO)).toBe(1);
      expect(kinds('b.csv', IN.CLOSE_WRITE)).toBe(0);
    } finally {
      ino.close();
    }
  });

  it('each read says whether it emptied the queue', async () => {
    const addon = nativeAddon();
    if (addon === null) return; // CKPT_NATIVE=0: covered by the first case
    const dir = tmpDir();
    const reads: Array<{ events: number; drained: boolean }> = [];
    const ino = new Inotify(addon, (evs, drained) => reads.push({ events: evs?.length ?? 0, drained }));
    try {
      ino.add(dir);
      // Written in line, so all of it is queued before the first read: 3,000 files, four
      // records each of 32 bytes (a 9-letter name padded to 16): 384,000 bytes, six 64 KB reads.
      for (let i = 0; i < 3_000; i++) fs.writeFileSync(path.join(dir, `f${i}.csv`), 'x');
      await waitFor(() => reads.reduce((n, r) => n + r.events, 0) >= 12_000);
      expect(reads.map((r) => r.drained)).toEqual([false, false, false, false, false, true]);
    } finally {
      ino.close();
    }
  });

  it('posix_spawn searches PATH as execvp does: a missing entry and a non-executable one are skipped, EACCES before ENOENT', async () => {
    const addon = nativeAddon();
    if (addon === null) return;
    const [empty, noExec, good] = [tmpDir(), tmpDir(), tmpDir()];
    fs.writeFileSync(path.join(noExec, 'ckpt-prog'), '#!/bin/sh\necho no-exec\n', { mode: 0o644 });
    fs.writeFileSync(path.join(good, 'ckpt-prog'), '#!/bin/sh\necho good\n', { mode: 0o755 });
    const start = (pathVar: string) =>
      new Promise<[number, number, number] | string>((resolve) =>
        addon.spawnAsync('ckpt-prog', ['ckpt-prog'], [], null, pathVar, (e, started) => resolve(e ? String(e.code) : started!)),
      );
    const run = async (pathVar: string): Promise<string> => {
      const started = await start(pathVar);
      if (typeof started === 'string') return started;
      const [pid, out, err] = started;
      const code = await new Promise<number | null>((resolve) => addon.watchExit(pid, (c) => resolve(c)));
      const text = fs.readFileSync(out, 'utf8');
      fs.closeSync(out);
      fs.closeSync(err);
      expect(code).toBe(0);
      return text;
    };
    expect(await run(`${empty}:${path.join(empty, 'not-there')}:${noExec}:${good}`)).toBe('good\n');
    expect(await run(`${good}:${noExec}`)).toBe('good\n');
    expect(await run(`${empty}:${noExec}`)).toBe('EACCES');
    expect(await run(`${empty}:${path.join(empty, 'not-there')}`)).toBe('ENOENT');
    // Four starts at once, each on its own thread of the pool: each gets its own child and pipes.
    const all = await Promise.all([1, 2, 3, 4].map(() => run(good)));
    expect(all).toEqual(['good\n', 'good\n', 'good\n', 'good\n']);
  });
});
