import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AfterActionError, afterActionLabel, applyAfterAction, suffixedName } from '../../src/run/after-action.js';
import { HOSTILE_NAMES } from '../fixtures/handlers/hostile-names.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

const shmDirs: string[] = [];

afterEach(() => {
  for (const d of shmDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  cleanupTmpDirs();
});

function write(file: string, content: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/** Every file below `dir`, relative, sorted. */
function tree(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

const noMarker = (root: string) => ({ root, readyMarker: null });

describe('keep and delete', () => {
  it('keep does nothing', async () => {
    const root = tmpDir();
    const f = write(path.join(root, 'a.csv'), 'x');
    expect(await applyAfterAction('keep', f, noMarker(root))).toBe('keep');
    expect(fs.readFileSync(f, 'utf8')).toBe('x');
  });

  it('delete removes the file and its marker', async () => {
    const root = tmpDir();
    const f = write(path.join(root, 'sub/a.csv'), 'x');
    write(`${f}.done`, '');
    write(path.join(root, 'sub/other.csv'), 'y');
    expect(await applyAfterAction('delete', f, { root, readyMarker: '.done' })).toBe('deleted');
    expect(tree(root)).toEqual(['sub/other.csv']);
  });

  it('delete of a file that is already gone says so', async () => {
    const root = tmpDir();
    expect(await applyAfterAction('delete', path.join(root, 'gone.csv'), noMarker(root))).toBe('deleted (already gone)');
  });
});

describe('move', () => {
  it('keeps the path relative to the root, creating sub-folders', async () => {
    const root = tmpDir();
    const dest = path.join(tmpDir(), 'done'); // does not exist yet
    const f = write(path.join(root, 'a/b/c.csv'), 'data');
    expect(await applyAfterAction({ moveTo: dest }, f, noMarker(root))).toBe(`moved to ${path.join(dest, 'a/b/c.csv')}`);
    expect(tree(root)).toEqual([]);
    expect(fs.readFileSync(path.join(dest, 'a/b/c.csv'), 'utf8')).toBe('data');
  });

  it('never overwrites: a taken name gets .1, .2, ... before the extension', async () => {
    const root = tmpDir();
    const dest = tmpDir();
    write(path.join(dest, 'a/b.csv'), 'old');
    write(path.join(dest, 'a/b.1.csv'), 'older');
    const f = write(path.join(root, 'a/b.csv'), 'new');
    expect(await applyAfterAction({ moveTo: dest }, f, noMarker(root))).toBe(`moved to ${path.join(dest, 'a/b.2.csv')}`);
    expect(fs.readFileSync(path.join(dest, 'a/b.csv'), 'utf8')).toBe('old');
    expect(fs.readFileSync(path.join(dest, 'a/b.1.csv'), 'utf8')).toBe('older');
    expect(fs.readFileSync(path.join(dest, 'a/b.2.csv'), 'utf8')).toBe('new');
  });

  it('the marker follows its data file, with the same suffix', async () => {
    const root = tmpDir();
    const dest = tmpDir();
    write(path.join(dest, 'x/b.csv'), 'old');
    const f = write(path.join(root, 'x/b.csv'), 'new');
    write(`${f}.done`, 'marker');
    expect(await applyAfterAction({ moveTo: dest }, f, { root, readyMarker: '.done' })).toBe(`moved to ${path.join(dest, 'x/b.1.csv')}`);
    expect(tree(dest)).toEqual(['x/b.1.csv', 'x/b.1.csv.done', 'x/b.csv']);
    expect(tree(root)).toEqual([]);
  });

  it('a data file without its marker moves alone', async () => {
    const root = tmpDir();
    const dest = tmpDir();
    const f = write(path.join(root, 'b.csv'), 'new');
    await applyAfterAction({ moveTo: dest }, f, { root, readyMarker: '.done' });
    expect(tree(dest)).toEqual(['b.csv']);
  });

  it('moving a file that is gone is an error', async () => {
    const root = tmpDir();
    await expect(applyAfterAction({ moveTo: tmpDir() }, path.join(root, 'gone.csv'), noMarker(root))).rejects.toThrow(/gone/);
  });

  it('accepts the resolved configuration shape too', async () => {
    const root = tmpDir();
    const dest = tmpDir();
    const f = write(path.join(root, 'b.csv'), 'x');
    expect(await applyAfterAction({ kind: 'move', dir: dest }, f, noMarker(root))).toBe(`moved to ${path.join(dest, 'b.csv')}`);
    const g = write(path.join(root, 'c.csv'), 'x');
    expect(await applyAfterAction({ kind: 'delete' }, g, noMarker(root))).toBe('deleted');
    expect(await applyAfterAction({ kind: 'keep' }, g, noMarker(root))).toBe('keep');
  });

  it('twenty files of the same name moved into one folder at once all survive under distinct names', async () => {
    const dest = tmpDir();
    const roots = Array.from({ length: 20 }, () => tmpDir());
    const moved = await Promise.all(roots.map((root, i) => applyAfterAction({ moveTo: dest }, write(path.join(root, 'b.csv'), `content ${i}`), noMarker(root))));
    expect(new Set(moved).size).toBe(20);
    const contents = tree(dest).map((n) => fs.readFileSync(path.join(dest, n), 'utf8'));
    expect(contents.sort()).toEqual(roots.map((_, i) => `content ${i}`).sort());
  });

  it('hostile names move intact', async () => {
    const root = tmpDir();
    const dest = tmpDir();
    for (const [label, name] of HOSTILE_NAMES) {
      const f = write(path.join(root, 'in $(x);', name), label);
      const r = await applyAfterAction({ moveTo: dest }, f, { root, readyMarker: '.ok' });
      expect(r, label).toBe(`moved to ${path.join(dest, 'in $(x);', name)}`);
      expect(fs.readFileSync(path.join(dest, 'in $(x);', name), 'utf8')).toBe(label);
    }
    expect(tree(root)).toEqual([]);
    expect(tree(dest)).toHaveLength(HOSTILE_NAMES.length);
  });
});

describe('move across file systems (/dev/shm -> os.tmpdir())', () => {
  function shmRoot(): string | null {
    if (!fs.existsSync('/dev/shm')) return null;
    const d = fs.mkdtempSync('/dev/shm/ckpt-test-');
    shmDirs.push(d);
    return d;
  }

  it('falls back to copy + unlink, still never overwriting, keeping the mtime, leaving no temp file', async (t) => {
    const root = shmRoot();
    const dest = tmpDir();
    if (root === null || fs.statSync(root).dev === fs.statSync(dest).dev) {
      console.log(`skipped: /dev/shm and ${os.tmpdir()} are ${root === null ? 'not both present' : 'the same device'}`);
      t.skip();
      return;
    }
    write(path.join(dest, 'a/b.csv'), 'old');
    const f = write(path.join(root, 'a/b.csv'), 'new data');
    write(`${f}.done`, '');
    const mtime = new Date('2024-01-02T03:04:05Z');
    fs.utimesSync(f, mtime, mtime);
    expect(await applyAfterAction({ moveTo: dest }, f, { root, readyMarker: '.done' })).toBe(`moved to ${path.join(dest, 'a/b.1.csv')}`);
    expect(tree(root)).toEqual([]);
    expect(tree(dest)).toEqual(['a/b.1.csv', 'a/b.1.csv.done', 'a/b.csv']);
    expect(fs.readFileSync(path.join(dest, 'a/b.1.csv'), 'utf8')).toBe('new data');
    expect(fs.readFileSync(path.join(dest, 'a/b.csv'), 'utf8')).toBe('old');
    expect(fs.statSync(path.join(dest, 'a/b.1.csv')).mtimeMs).toBe(mtime.getTime());
  });
});

describe('safety', () => {
  it('refuses a path with .. segments, or outside the root, and changes nothing', async () => {
    const parent = tmpDir();
    const root = path.join(parent, 'root');
    const dest = path.join(parent, 'dest');
    fs.mkdirSync(root);
    const outside = write(path.join(parent, 'outside.csv'), 'keep me');
    for (const action of ['delete', { moveTo: dest }] as const) {
      await expect(applyAfterAction(action, `${root}/../outside.csv`, noMarker(root))).rejects.toThrow(/"\.\." segments/);
      await expect(applyAfterAction(action, `${root}/../outside.csv`, noMarker(root))).rejects.toBeInstanceOf(AfterActionError);
      // Even when it would land back inside the root.
      await expect(applyAfterAction(action, `${root}/x/../../root/a.csv`, noMarker(root))).rejects.toThrow(/"\.\." segments/);
      await expect(applyAfterAction(action, outside, noMarker(root))).rejects.toThrow(/not inside the watched folder/);
      await expect(applyAfterAction(action, root, noMarker(root))).rejects.toThrow(/not inside/);
      await expect(applyAfterAction(action, `${root}-sibling/x.csv`, noMarker(root))).rejects.toThrow(/not inside/);
    }
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep me');
    expect(fs.existsSync(dest)).toBe(false);
  });

  it('refuses a file that is a symbolic link', async () => {
    const root = tmpDir();
    const target = write(path.join(tmpDir(), 'secret.txt'), 'secret');
    const link = path.join(root, 'link.csv');
    fs.symlinkSync(target, link);
    const dest = tmpDir();
    for (const action of ['delete', { moveTo: dest }] as const) {
      await expect(applyAfterAction(action, link, noMarker(root))).rejects.toThrow(/symbolic link/);
    }
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(target, 'utf8')).toBe('secret');
    expect(tree(dest)).toEqual([]);
  });

  it('refuses a marker that is a symbolic link, before touching the data file', async () => {
    const root = tmpDir();
    const f = write(path.join(root, 'a.csv'), 'x');
    fs.symlinkSync(write(path.join(tmpDir(), 'elsewhere'), 'e'), `${f}.done`);
    await expect(applyAfterAction('delete', f, { root, readyMarker: '.done' })).rejects.toThrow(/marker is a symbolic link/);
    expect(fs.existsSync(f)).toBe(true);
  });

  it('refuses a file in a folder that links out of the root', async () => {
    const root = tmpDir();
    const outside = tmpDir();
    const victim = write(path.join(outside, 'victim.csv'), 'v');
    fs.symlinkSync(outside, path.join(root, 'sub'));
    await expect(applyAfterAction('delete', path.join(root, 'sub/victim.csv'), noMarker(root))).rejects.toThrow(/outside the watched folder/);
    expect(fs.existsSync(victim)).toBe(true);
  });

  it('a watched root that is itself a link is fine', async () => {
    const real = tmpDir();
    const root = path.join(tmpDir(), 'root-link');
    fs.symlinkSync(real, root);
    const f = write(path.join(root, 'a.csv'), 'x');
    expect(await applyAfterAction('delete', f, noMarker(root))).toBe('deleted');
  });

  it('refuses to move through a symbolic link inside the destination', async () => {
    const root = tmpDir();
    const dest = tmpDir();
    const elsewhere = tmpDir();
    fs.symlinkSync(elsewhere, path.join(dest, 'a'));
    const f = write(path.join(root, 'a/b.csv'), 'x');
    await expect(applyAfterAction({ moveTo: dest }, f, noMarker(root))).rejects.toThrow(/symbolic link/);
    expect(tree(elsewhere)).toEqual([]);
    expect(fs.existsSync(f)).toBe(true);
  });

  it('refuses a folder as the file', async () => {
    const root = tmpDir();
    fs.mkdirSync(path.join(root, 'd'));
    await expect(applyAfterAction('delete', path.join(root, 'd'), noMarker(root))).rejects.toThrow(/not a regular file/);
  });
});

describe('names', () => {
  it('suffixedName puts the counter before the extension', () => {
    expect(suffixedName('/d/b.csv', 0)).toBe('/d/b.csv');
    expect(suffixedName('/d/b.csv', 1)).toBe('/d/b.1.csv');
    expect(suffixedName('/d/b.tar.gz', 2)).toBe('/d/b.tar.2.gz');
    expect(suffixedName('/d/.hidden', 1)).toBe('/d/.hidden.1');
    expect(suffixedName('/d/noext', 3)).toBe('/d/noext.3');
    expect(suffixedName('/d/b.csv.done', 1)).toBe('/d/b.csv.1.done');
  });

  it('afterActionLabel is what the store records', () => {
    expect(afterActionLabel('keep')).toBe('keep');
    expect(afterActionLabel('delete')).toBe('delete');
    expect(afterActionLabel({ moveTo: '/done' })).toBe('move:/done');
    expect(afterActionLabel({ kind: 'move', dir: '/done/' })).toBe('move:/done');
  });
});
