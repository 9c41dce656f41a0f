/**
 * Which keys a reload applies and which wait for a restart, on configs loaded from real files
 * the way the daemon loads them (src/config/reload-diff.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { appliedConfig, diffConfig } from '../../src/config/reload-diff.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const BASE = { database: 'ckpt.db', watch: [{ dir: 'inbox' }], handler: { command: ['node', 'h.mjs', '{path}'] } };

/** Loads BASE merged with `a`, then with `b`, from the same file (as a SIGHUP re-reads it). */
function twice(a: Record<string, unknown>, b: Record<string, unknown>, env: Record<string, string> = {}): [ResolvedConfig, ResolvedConfig] {
  const dir = tmpDir('ckpt-reload-');
  for (const d of ['inbox', 'second']) fs.mkdirSync(path.join(dir, d));
  const write = (c: Record<string, unknown>) => fs.writeFileSync(path.join(dir, 'ckpt.config.json'), JSON.stringify({ ...BASE, ...c }));
  write(a);
  const first = loadConfig('ckpt.config.json', { cwd: dir, env });
  write(b);
  return [first, loadConfig('ckpt.config.json', { cwd: dir, env })];
}

describe('diffConfig', () => {
  it('an unchanged file changes nothing', () => {
    const [a, b] = twice({}, {});
    expect(diffConfig(a, b)).toEqual({ live: [], restart: [] });
  });

  it('sorts changed keys into live and restart, nested log keys by their own rule', () => {
    const [a, b] = twice(
      { concurrency: 2, log: { level: 'info', format: 'json' } },
      { concurrency: 3, database: 'other.db', watch: [{ dir: 'second' }], http: { port: 9464 }, log: { level: 'debug', format: 'pretty' }, onSuccess: 'delete' },
    );
    const d = diffConfig(a, b);
    expect([...d.live].sort()).toEqual(['concurrency', 'log.level', 'onSuccess', 'watch']);
    expect([...d.restart].sort()).toEqual(['database', 'http', 'log.format']);
  });

  it('the environment given at start still wins over the re-read file', () => {
    const [a, b] = twice({ concurrency: 2 }, { concurrency: 7 }, { CKPT_CONCURRENCY: '4' });
    expect(a.concurrency).toBe(4);
    expect(diffConfig(a, b)).toEqual({ live: [], restart: [] });
  });
});

describe('appliedConfig', () => {
  it('takes the live keys and keeps the running value of each restart key, so the next reload names it again', () => {
    const [a, b] = twice({ log: { level: 'info', format: 'json' } }, { database: 'other.db', log: { level: 'debug', format: 'pretty' } });
    const d = diffConfig(a, b);
    const applied = appliedConfig(a, b, d.restart);
    expect(applied.database).toEqual(a.database);
    expect(applied.log).toEqual({ level: 'debug', format: 'json' });
    expect(diffConfig(applied, b)).toEqual({ live: [], restart: ['database', 'log.format'] });
  });
});
