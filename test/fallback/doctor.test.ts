/**
 * `ckpt doctor` through the real CLI: one line per check, exit 69 when a person is needed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DoctorJson } from '../../src/cli/commands/doctor.js';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { selfIdentity } from '../../src/store/fallback/process-identity.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { ckpt } from '../cli/cli-helper.js';
import { makeWorkspace } from '../cli/workspace.js';
import { killChildren } from '../helpers/spawn.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { STATS, corrupt, files, holdLock, killShells } from './helpers.js';

const stores: FallbackStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  killShells();
  killChildren();
  cleanupTmpDirs();
});

async function seeded(): Promise<ReturnType<typeof makeWorkspace>> {
  const ws = makeWorkspace();
  fs.mkdirSync(path.dirname(ws.db), { recursive: true });
  const s = new SqliteStore(ws.db);
  await s.discover(files('d', 3), Date.now());
  const cs = await s.claim(3, { workerId: 'w', leaseMs: 60_000, now: Date.now() });
  await s.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats: STATS, now: Date.now() })));
  await s.close();
  return ws;
}

const byName = (j: DoctorJson, name: string) => j.checks.filter((c) => c.name === name);

describe('ckpt doctor', () => {
  it('a healthy database: every line ok, exit 0', async () => {
    const ws = await seeded();
    const r = await ckpt(['doctor', '--config', ws.config], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok +integrity +integrity_check ok/m);
    expect(r.stdout).toMatch(/^ok +journal mode +wal$/m);
    expect(r.stdout).toMatch(/^ok +file system .*\(local\)$/m);
    expect(r.stdout).toMatch(/nothing needs a person/);
    const j = (await ckpt(['doctor', '--config', ws.config, '--json'], { cwd: ws.dir })).json<DoctorJson>();
    expect(j.needsPerson).toBe(false);
    expect(j.checks.every((c) => c.level === 'ok')).toBe(true);
  });

  it('a corrupt database: FAIL integrity, exit 69', async () => {
    const ws = await seeded();
    corrupt(ws.db, 'header');
    const r = await ckpt(['doctor', '--config', ws.config], { cwd: ws.dir });
    expect(r.code).toBe(69);
    expect(r.stdout).toMatch(/^FAIL +integrity +the database cannot be read: .*SQLITE_NOTADB/m);
  });

  it('a degraded process: FAIL mode, its journal and markers are reported', async () => {
    const ws = await seeded();
    const s = new FallbackStore(ws.db, { lockTimeoutMs: 200, busyTimeoutMs: 10, fallback: { workerId: 'doc-w', probeMs: 60_000, snapshotMs: 0 } });
    stores.push(s);
    await s.discover(files('e', 2), Date.now());
    const shell = await holdLock(ws.db, 'begin-exclusive');
    const cs = await s.claim(2, { workerId: 'doc-w', leaseMs: 60_000, now: Date.now() });
    await s.complete(cs.slice(0, 1).map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats: STATS, now: Date.now() })));
    expect(s.mode().mode).toBe('degraded');
    const r = await ckpt(['doctor', '--config', ws.config, '--json'], { cwd: ws.dir });
    expect(r.code).toBe(69);
    const j = r.json<DoctorJson>();
    expect(byName(j, 'mode')[0]).toMatchObject({ level: 'fail' });
    expect(byName(j, 'mode')[0]!.message).toMatch(/doc-w .* degraded since .*SQLITE_BUSY/);
    expect(byName(j, 'journals')[0]!.message).toMatch(/1 outcome\(s\), 2 claim\(s\) not yet in the database; its process .* is degraded/);
    expect(byName(j, 'markers')[0]!.message).toMatch(/2 claim marker\(s\) \(1 claimed, 1 completed\); 2 of live processes, 0 left by processes that are gone/);
    expect(byName(j, 'open by')[0]!.message).toMatch(/sqlite3/);
    await shell.release();
    expect(await s.tryRecover()).toBe(true);
    const after = await ckpt(['doctor', '--config', ws.config], { cwd: ws.dir });
    expect(after.code, after.stdout).toBe(0);
  });

  it('a journal being created (no header line yet) is reported by the owner its name gives, not as left by a process that is gone', async () => {
    const ws = await seeded();
    const dir = `${ws.db}.fallback`;
    fs.mkdirSync(dir, { recursive: true });
    // This test's own process stands for the live owner.
    const me = selfIdentity();
    fs.writeFileSync(path.join(dir, `journal-w-${me.pid}-${me.startTicks ?? '0'}.ndjson`), '');
    const j = (await ckpt(['doctor', '--config', ws.config, '--json'], { cwd: ws.dir })).json<DoctorJson>();
    expect(byName(j, 'journals')[0]!.message).toMatch(new RegExp(`its process \\(pid ${me.pid}\\) is degraded`));
  });
});
