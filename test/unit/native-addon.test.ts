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
});
