/**
 * After a power cut the machine boots again and pids start over: the ckpt started at boot may
 * get the very pid of the worker that was cut off between a durable outcome and its move. That
 * worker is gone all the same, and its unfinished after-action must be taken over, not left
 * for good because "a process with that pid is alive".
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Runner } from '../../src/run/runner.js';
import { bootTimeMs } from '../../src/store/fallback/process-identity.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { fingerprintOf } from '../../src/file-identity.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 };

describe('an unfinished after-action recorded before this boot', () => {
  it('is taken over even though its worker id names a pid that runs now (this very process)', async () => {
    const boot = bootTimeMs();
    expect(boot).not.toBeNull();
    const dir = tmpDir('ckpt-reboot-');
    const inbox = path.join(dir, 'inbox');
    const done = path.join(dir, 'done');
    fs.mkdirSync(inbox);
    fs.mkdirSync(done);
    const file = path.join(inbox, 'a.csv');
    fs.writeFileSync(file, 'row,1\n');
    const st = fs.statSync(file);
    const found = { fileUrl: file, fileType: 'csv', mtimeMs: Math.trunc(st.mtimeMs), size: st.size, fingerprint: fingerprintOf(st) };
    const store = new SqliteStore(path.join(dir, 'ckpt.db'));
    try {
      // The worker before the power cut had the pid this process has now; it recorded the
      // outcome (durably) a minute before the boot, and was cut off before the move.
      const before = boot! - 60_000;
      const cutOff = `${os.hostname()}:${process.pid}`;
      await store.discover([found], before);
      const [c] = await store.claim(1, { workerId: cutOff, leaseMs: 30_000, now: before });
      expect(await store.complete([{ fileUrl: file, token: c!.token, stats, now: before, afterAction: `move:${done}` }])).toEqual(['ok']);

      // The ckpt started after the boot finds the file still in the inbox.
      const [item] = (await store.discover([found], Date.now())).unfinished ?? [];
      expect(item?.processedBy).toBe(cutOff);
      const runner = new Runner({
        store,
        handler: () => Promise.reject(new Error('not to be run')),
        workerId: `${os.hostname()}:1`,
        host: os.hostname(),
        concurrency: 1,
        leaseMs: 30_000,
        folders: [{ dir: inbox, readyMarker: null }],
        onSuccess: { moveTo: done },
        onDead: 'keep',
        logger: pino({ level: 'silent' }),
      });
      await runner.finishAfterAction(item!);
      expect(fs.existsSync(file)).toBe(false);
      expect(fs.readFileSync(path.join(done, 'a.csv'), 'utf8')).toBe('row,1\n');
      expect((await store.get(file))!.afterAction).toMatch(new RegExp(`^move:${done} \\(redone by ${os.hostname()}:1 at `));
    } finally {
      await store.close();
    }
  });
});
