/**
 * The repo's ckpt.config.json and every file in config/examples/ must load, so that they
 * cannot rot when the schema changes. Each is copied into a temp folder first: loading one
 * in place would create folders inside the repo.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = path.join(REPO, 'config', 'examples');

function copyInto(file: string): string {
  const dir = tmpDir('ckpt-example-');
  fs.copyFileSync(file, path.join(dir, 'ckpt.config.json'));
  return dir;
}

describe("the repo's ckpt.config.json", () => {
  it('loads on a fresh clone, where var/ does not exist, and creates its folders', () => {
    const dir = copyInto(path.join(REPO, 'ckpt.config.json'));
    expect(fs.existsSync(path.join(dir, 'var'))).toBe(false);

    const cfg = loadConfig('ckpt.config.json', { cwd: dir, env: {} });

    expect(cfg.database).toEqual({ kind: 'sqlite', path: path.join(dir, 'var/ckpt.db') });
    expect(cfg.watch.map((w) => w.dir)).toEqual([path.join(dir, 'var/inbox')]);
    expect(cfg.handler).toEqual({
      kind: 'command',
      command: ['node', 'scripts/example-handler.mjs', '{path}'],
      timeoutMs: 600_000,
      killGraceMs: 5_000,
      cwd: dir,
    });
    expect(cfg.onSuccess).toEqual({ kind: 'move', dir: path.join(dir, 'var/done') });
    expect(cfg.onDead).toEqual({ kind: 'move', dir: path.join(dir, 'var/dead') });
    expect([cfg.concurrency, cfg.stableMs]).toEqual([2, 1000]);
    for (const sub of ['var/inbox', 'var/done', 'var/dead']) {
      expect(fs.statSync(path.join(dir, sub)).isDirectory()).toBe(true);
    }
    // Loading again over the created folders is fine.
    expect(loadConfig('ckpt.config.json', { cwd: dir, env: {} }).watch).toEqual(cfg.watch);
  });

  it('its handler program exists where the config folder (the handler cwd) says', () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(REPO, 'ckpt.config.json'), 'utf8')) as { handler: { command: string[] } };
    expect(fs.existsSync(path.join(REPO, cfg.handler.command[1] ?? ''))).toBe(true);
  });
});

interface ExampleFile {
  watch: { dir: string }[];
  handler: { module?: string };
  onSuccess?: unknown;
  onDead?: unknown;
}

function moveTo(a: unknown): string | undefined {
  return a !== null && typeof a === 'object' && 'moveTo' in a ? String((a as { moveTo: unknown }).moveTo) : undefined;
}

describe('config/examples', () => {
  const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'));

  it('holds the two documented examples', () => {
    expect(files.sort()).toEqual(['module-handler-ready-marker.json', 'multi-folder-move.json']);
  });

  it.each(files)('%s loads once the folders and files it names exist', (name) => {
    const dir = copyInto(path.join(EXAMPLES, name));
    const raw = JSON.parse(fs.readFileSync(path.join(dir, 'ckpt.config.json'), 'utf8')) as ExampleFile;
    for (const w of raw.watch) fs.mkdirSync(path.join(dir, w.dir), { recursive: true });
    for (const target of [moveTo(raw.onSuccess), moveTo(raw.onDead)]) {
      if (target !== undefined) fs.mkdirSync(path.join(dir, target), { recursive: true });
    }
    if (raw.handler.module !== undefined) {
      fs.mkdirSync(path.dirname(path.join(dir, raw.handler.module)), { recursive: true });
      fs.writeFileSync(path.join(dir, raw.handler.module), 'export default async function handle() {}\n');
    }

    const cfg = loadConfig('ckpt.config.json', { cwd: dir, env: {} });
    expect(cfg.watch.length).toBe(raw.watch.length);
    for (const w of cfg.watch) expect(w.dir.startsWith(dir)).toBe(true);
  });

  it('the module example uses a ready marker; the multi-folder one moves files', () => {
    const mod = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'module-handler-ready-marker.json'), 'utf8')) as ExampleFile & {
      watch: { readyMarker?: string }[];
    };
    expect(mod.handler.module).toBeDefined();
    expect(mod.watch[0]?.readyMarker).toBe('.done');
    const multi = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'multi-folder-move.json'), 'utf8')) as ExampleFile;
    expect(multi.watch.length).toBeGreaterThan(1);
    expect(moveTo(multi.onSuccess)).toBeDefined();
  });
});
