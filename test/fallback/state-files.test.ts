/**
 * State files (`<db>.fallback/state-*.json`, read by `ckpt status` and `ckpt doctor`) of
 * processes that are gone: ignored at once, removed by the next ckpt that looks.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { selfIdentity } from '../../src/store/fallback/process-identity.js';
import { readFallbackStates } from '../../src/store/fallback/state-files.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { killChildren, runTs } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { fallbackDirOf, holdLock, killShells } from './helpers.js';

const stores: FallbackStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  killShells();
  killChildren();
  cleanupTmpDirs();
});

const stateFiles = (db: string) => fs.readdirSync(fallbackDirOf(db)).filter((n) => n.startsWith('state-'));

describe('state files of processes that are gone', () => {
  it('a SIGKILLed process: ignored at once, removed by a running store within its periodic check', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    await new SqliteStore(db).close();
    const live = new FallbackStore(db, { fallback: { workerId: 'survivor', healthCheckMs: 100, snapshotMs: 0 } });
    stores.push(live);

    const out = path.join(dir, 'victim.out');
    const child = runTs('test/fixtures/fallback-worker.ts', [db, out, 'victim', JSON.stringify({ files: 1, prefix: 's', holdAfter: { completed: 0, claimed: 0 } })]);
    await waitFor(() => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('READY'), { timeoutMs: 30_000 });
    expect(readFallbackStates(fallbackDirOf(db)).map((s) => s.workerId)).toEqual(['survivor', 'victim']);
    const name = stateFiles(db).find((n) => n.startsWith('state-victim-'))!;
    process.kill(Number(/-(\d+)\.json$/.exec(name)![1]), 'SIGKILL');
    await child;

    expect(readFallbackStates(fallbackDirOf(db)).map((s) => s.workerId)).toEqual(['survivor']);
    await waitFor(() => !stateFiles(db).includes(name), { timeoutMs: 10_000, message: 'the dead process state file removed' });
    expect(stateFiles(db)).toHaveLength(1);
  });

  it('a reused pid (same pid, other start time) is not the owner; a store that starts degraded removes its file too', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    await new SqliteStore(db).close();
    fs.mkdirSync(fallbackDirOf(db), { recursive: true });
    // pid 1 runs, but it is not the process that wrote this (its start time differs).
    const stale = path.join(fallbackDirOf(db), 'state-old-1.json');
    const owner = { pid: 1, host: selfIdentity().host, startTicks: '1' };
    fs.writeFileSync(stale, JSON.stringify({ workerId: 'old', owner, mode: 'degraded', since: 1, reason: 'locked', kind: 'locked', openClaims: 0, journal: 'x', updatedAt: 1 }));
    expect(readFallbackStates(fallbackDirOf(db))).toEqual([]);

    // Even reads fail: the store starts degraded, and still clears what dead processes left.
    const shell = await holdLock(db, 'locking-mode-exclusive');
    const s = new FallbackStore(db, { lockTimeoutMs: 200, busyTimeoutMs: 20, fallback: { workerId: 'w', probeMs: 60_000, snapshotMs: 0 } });
    stores.push(s);
    expect(s.mode().mode).toBe('degraded');
    expect(fs.existsSync(stale)).toBe(false);
    await shell.release();
  });
});
