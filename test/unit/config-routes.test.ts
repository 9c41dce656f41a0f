/**
 * Routes in the configuration: the per-folder handler, concurrency, retry and after-actions,
 * filled from the top level, and the rules across entries, against real config files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { routesByFileType } from '../../src/config/routes.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { configError } from '../helpers/config-error.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const NAME = 'ckpt.config.json';
const TOP_HANDLER = { command: ['node', 'h.mjs', '{path}'] };

/** A folder with inbox-a/, inbox-b/, done/ and a config with two watched folders merged with `content`. */
function setup(content: Record<string, unknown>, watch?: unknown[]): string {
  const dir = tmpDir('ckpt-routes-config-');
  for (const d of ['a', 'b', 'done']) fs.mkdirSync(path.join(dir, d));
  const base = { database: 'var/ckpt.db', watch: watch ?? [{ dir: 'a' }, { dir: 'b' }], handler: TOP_HANDLER };
  fs.writeFileSync(path.join(dir, NAME), JSON.stringify({ ...base, ...content }, null, 2));
  return dir;
}

function load(dir: string, env: Record<string, string> = {}): ResolvedConfig {
  return loadConfig(NAME, { cwd: dir, env });
}

describe('routes: per-folder settings', () => {
  it('an entry without route keys has no route; one with any has all five, the rest from the top level', () => {
    const dir = setup(
      { concurrency: 6, retry: { maxRetries: 7, baseDelayMs: 100 }, onDead: { moveTo: 'done' } },
      [{ dir: 'a' }, { dir: 'b', handler: { module: 'b.mjs' }, concurrency: 2, retry: { maxRetries: 0 }, onSuccess: 'delete' }],
    );
    fs.writeFileSync(path.join(dir, 'b.mjs'), 'export default async () => {};\n');
    const cfg = load(dir);
    expect(cfg.watch[0]!.route).toBeUndefined();
    expect(cfg.watch[1]!.route).toEqual({
      handler: { kind: 'module', module: path.join(dir, 'b.mjs'), timeoutMs: 600_000 },
      concurrency: 2,
      retry: { maxRetries: 0, baseDelayMs: 100, maxDelayMs: 300_000 },
      onSuccess: { kind: 'delete' },
      onDead: { kind: 'move', dir: path.join(dir, 'done') },
    });
    expect(routesByFileType(cfg.watch)).toEqual([{ fileType: 'b', route: cfg.watch[1]!.route }]);
  });

  it('a route without its own concurrency may use every slot (the top-level total)', () => {
    const cfg = load(setup({ concurrency: 5 }, [{ dir: 'a', onSuccess: 'delete' }]));
    expect(cfg.watch[0]!.route).toMatchObject({ concurrency: 5, handler: { kind: 'command', command: TOP_HANDLER.command } });
  });

  it('two entries may share a file type when they share the route', () => {
    const cfg = load(setup({}, [{ dir: 'a', fileType: 'x', concurrency: 1 }, { dir: 'b', fileType: 'x', concurrency: 1 }]));
    expect(routesByFileType(cfg.watch).map((r) => r.fileType)).toEqual(['x']);
  });
});

describe('routes: errors name the key, one line, exit 78', () => {
  it.each([
    [
      { concurrency: 2 },
      [{ dir: 'a', concurrency: 3 }],
      "ckpt.config.json: watch[0].concurrency: expected at most the top-level concurrency (2, the process's total slots; a route's concurrency is its share of them), got 3",
    ],
    [{}, [{ dir: 'a', concurrency: 0 }], 'ckpt.config.json: watch[0].concurrency: expected an integer >= 1, got 0'],
    [{}, [{ dir: 'a', retry: { maxRetry: 1 } }], 'ckpt.config.json: watch[0].retry: unknown key "maxRetry" (allowed: maxRetries, baseDelayMs, maxDelayMs)'],
    [
      { retry: { baseDelayMs: 5000, maxDelayMs: 10_000 } },
      [{ dir: 'a', retry: { maxDelayMs: 1000 } }],
      'ckpt.config.json: watch[0].retry.maxDelayMs: expected at least baseDelayMs (5000), got 1000',
    ],
    [{}, [{ dir: 'a', handler: { command: [] } }], 'ckpt.config.json: watch[0].handler.command: expected a non-empty argv list such as ["node", "handler.mjs", "{path}"], got []'],
    [{}, [{ dir: 'a', onDead: 'trash' }], 'ckpt.config.json: watch[0].onDead: expected "keep", "delete" or {"moveTo": "folder"}, got "trash"'],
    [
      {},
      [{ dir: 'a', fileType: 'x' }, { dir: 'b', fileType: 'x', concurrency: 1 }],
      'ckpt.config.json: watch[1].fileType: "x" is also the file type of watch[0], which has a different route (handler, concurrency, retry, onSuccess, onDead): a file\'s route is chosen by its type; give each entry a fileType of its own',
    ],
    [{}, [{ dir: 'a', onSuccess: { moveTo: 'b' } }, { dir: 'b' }], 'ckpt.config.json: watch[0].onSuccess.moveTo: folder '],
    [{}, [{ dir: 'a', onDead: { moveTo: 'nowhere' } }], 'ckpt.config.json: watch[0].onDead.moveTo: folder '],
    [{}, [{ dir: 'a', handler: { module: 'missing.mjs' } }], 'ckpt.config.json: watch[0].handler.module: file '],
  ])('%j %j', (content, watch, message) => {
    const err = configError(() => load(setup(content, watch)));
    expect(err.message.startsWith(message)).toBe(true);
    expect(err.message).not.toContain('\n');
    expect(err.exitCode).toBe(78);
  });

  it('a lower total from the environment is checked against the route caps too', () => {
    const err = configError(() => load(setup({ concurrency: 8 }, [{ dir: 'a', concurrency: 4 }]), { CKPT_CONCURRENCY: '2' }));
    expect(err.key).toBe('watch[0].concurrency');
  });
});
