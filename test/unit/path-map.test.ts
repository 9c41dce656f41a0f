/**
 * Per-host path prefixes: the mapping itself, the store seen through it (a real SQLite store),
 * and the configuration rules with their messages.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { idempotencyKey } from '../../src/store/idempotency.js';
import { PathMap } from '../../src/store/path-map.js';
import { PathMappedStore } from '../../src/store/path-mapped-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { ExpiredClaim } from '../../src/store/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

describe('PathMap', () => {
  const map = new PathMap([
    { local: '/mnt/a/share', shared: '/share' },
    { local: '/mnt/b', shared: 'nfs1:' },
  ]);

  it('maps whole folders both ways, and leaves other paths alone', () => {
    expect(map.toShared('/mnt/a/share/in/x.csv')).toBe('/share/in/x.csv');
    expect(map.toShared('/mnt/a/share')).toBe('/share');
    expect(map.toShared('/mnt/b/x.csv')).toBe('nfs1:/x.csv');
    expect(map.toLocal('/share/in/x.csv')).toBe('/mnt/a/share/in/x.csv');
    expect(map.toLocal('nfs1:/x.csv')).toBe('/mnt/b/x.csv');
    // Not a whole folder: /mnt/a/shared is not below /mnt/a/share.
    expect(map.toShared('/mnt/a/shared/x.csv')).toBe('/mnt/a/shared/x.csv');
    expect(map.toLocal('/shared/x.csv')).toBe('/shared/x.csv');
    expect(map.toShared('/var/local/x.csv')).toBe('/var/local/x.csv');
  });

  it('is its own inverse on every mapped path', () => {
    for (const p of ['/mnt/a/share/a b/ü.csv', '/mnt/b/deep/er/x', '/mnt/a/share/.hidden']) {
      expect(map.toLocal(map.toShared(p))).toBe(p);
    }
  });
});

describe('PathMappedStore over SQLite', () => {
  it('stores shared names and hands out local ones, for every call that carries a path', async () => {
    const dir = tmpDir('ckpt-pathmap-');
    const inner = new SqliteStore(path.join(dir, 'ckpt.db'), { retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 1 } });
    const store = new PathMappedStore(inner, new PathMap([{ local: '/mnt/a/share', shared: '/share' }]));
    try {
      const now = 1_700_000_000_000;
      const f = (name: string) => ({ fileUrl: `/mnt/a/share/in/${name}`, fileType: 'csv', mtimeMs: now, size: 1, fingerprint: `fp-${name}` });
      expect((await store.discover([f('x.csv'), f('y.csv'), f('z.csv')], now)).inserted).toBe(3);
      expect((await inner.list({})).map((r) => r.fileUrl)).toEqual(['/share/in/x.csv', '/share/in/y.csv', '/share/in/z.csv']);

      const [x, y] = await store.claim(2, { workerId: 'w1', leaseMs: 1_000, now });
      expect(x!.fileUrl).toBe('/mnt/a/share/in/x.csv');
      // The key comes from the shared name: the same on every host.
      expect(x!.idempotencyKey).toBe(idempotencyKey('/share/in/x.csv', 1));
      expect(await store.heartbeat([x!, y!], 1_000, now + 10)).toEqual([]);
      expect(await store.setHandlerPid(x!, 4242)).toBe('ok');
      expect(await store.complete([{ fileUrl: x!.fileUrl, token: x!.token, now: now + 20, stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 5 } }])).toEqual(['ok']);
      expect((await inner.get('/share/in/x.csv'))?.status).toBe('completed');

      // y's lease runs out: the sweep reports it with the local path.
      const expired: ExpiredClaim[] = [];
      const z = await store.claimFile('/mnt/a/share/in/z.csv', { workerId: 'w2', leaseMs: 1_000, now: now + 5_000, onExpired: (e) => expired.push(...e) });
      expect(z?.fileUrl).toBe('/mnt/a/share/in/z.csv');
      expect(expired.map((e) => e.fileUrl)).toEqual(['/mnt/a/share/in/y.csv']);
      expect(await store.fail({ fileUrl: z!.fileUrl, token: z!.token, error: 'boom', permanent: true, now: now + 5_001, durationMs: 1 })).toBe('dead');

      expect((await store.get('/mnt/a/share/in/z.csv'))?.fileUrl).toBe('/mnt/a/share/in/z.csv');
      // The shared name is found too (an operator pasting it from psql), and shown locally.
      expect((await store.get('/share/in/z.csv'))?.fileUrl).toBe('/mnt/a/share/in/z.csv');
      expect((await store.attempts('/mnt/a/share/in/z.csv')).map((a) => a.fileUrl)).toEqual(['/mnt/a/share/in/z.csv']);
      const page1 = await store.list({ limit: 2 });
      expect(page1.map((r) => r.fileUrl)).toEqual(['/mnt/a/share/in/x.csv', '/mnt/a/share/in/y.csv']);
      expect((await store.list({ limit: 2, after: page1[1]!.fileUrl })).map((r) => r.fileUrl)).toEqual(['/mnt/a/share/in/z.csv']);
      expect(await store.requeue({ files: ['/mnt/a/share/in/z.csv'], now: now + 6_000 })).toBe(1);
      expect((await inner.get('/share/in/z.csv'))?.status).toBe('pending');
    } finally {
      await store.close();
    }
  });
});

describe('pathPrefixes in the configuration', () => {
  function load(pathPrefixes: unknown): ReturnType<typeof loadConfig> {
    const dir = tmpDir('ckpt-pathmap-config-');
    fs.mkdirSync(path.join(dir, 'inbox'));
    fs.writeFileSync(
      path.join(dir, 'ckpt.config.json'),
      JSON.stringify({ database: 'ckpt.db', watch: [{ dir: 'inbox' }], handler: { command: ['true'] }, pathPrefixes }),
    );
    return loadConfig('ckpt.config.json', { cwd: dir, env: {} });
  }

  function problem(pathPrefixes: unknown): string {
    try {
      load(pathPrefixes);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  }

  it('makes a relative local path absolute against the config folder', () => {
    const cfg = load([{ local: 'share', shared: '/share' }]);
    expect(cfg.pathPrefixes).toEqual([{ local: path.join(cfg.configDir, 'share'), shared: '/share' }]);
  });

  it('refuses wrong shapes, trailing slashes, the root folder and overlaps, naming the key', () => {
    expect(problem({ local: '/a', shared: '/s' })).toMatch(/pathPrefixes: expected a list of prefixes/);
    expect(problem([{ local: '/a' }])).toMatch(/pathPrefixes\[0\]\.shared: missing: expected the name every host uses/);
    expect(problem([{ local: '/a', shared: '/s', mount: 1 }])).toMatch(/pathPrefixes\[0\]: unknown key "mount"/);
    expect(problem([{ local: '/a', shared: '/s/' }])).toMatch(/pathPrefixes\[0\]\.shared: expected a name without a trailing "\/"/);
    expect(problem([{ local: '/', shared: '/s' }])).toMatch(/pathPrefixes\[0\]\.local: expected the folder where the share is mounted/);
    expect(problem([
      { local: '/mnt/a', shared: '/s1' },
      { local: '/mnt/a/b', shared: '/s2' },
    ])).toMatch(/pathPrefixes\[1\]\.local: "\/mnt\/a\/b" overlaps pathPrefixes\[0\]\.local \("\/mnt\/a"\)/);
    expect(problem([
      { local: '/mnt/a', shared: '/s' },
      { local: '/mnt/b', shared: '/s' },
    ])).toMatch(/pathPrefixes\[1\]\.shared: "\/s" overlaps/);
    // Siblings with a common start are fine.
    expect(load([{ local: '/mnt/a', shared: '/s' }, { local: '/mnt/ab', shared: '/sb' }]).pathPrefixes).toHaveLength(2);
  });
});
