/**
 * `ckpt validate` through the real CLI: real config files, real folders (one this user cannot
 * write, checked as another user), real handler programs and modules, and a real database held
 * locked by the sqlite3 shell or used by a degraded daemon.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ValidateJson } from '../../src/cli/commands/validate.js';
import { CLI, drop, killDaemons, setup, startDaemon, started } from '../helpers/daemon.js';
import { otherUser, runningAsRoot } from '../helpers/other-user.js';
import { killChildren } from '../helpers/spawn.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { holdLock, killShells } from '../fallback/helpers.js';
import { ckpt, exec } from './cli-helper.js';
import { makeWorkspace, seedStore } from './workspace.js';

afterEach(() => {
  killDaemons();
  killShells();
  killChildren();
  cleanupTmpDirs();
});

const nobody = otherUser(65534);

async function validate(config: string, cwd: string): Promise<{ code: number | null; json: ValidateJson; stdout: string }> {
  const text = await ckpt(['validate', '--config', config], { cwd });
  const r = await ckpt(['validate', '--config', config, '--json'], { cwd });
  expect(r.code, r.stderr).toBe(text.code);
  return { code: r.code, json: r.json<ValidateJson>(), stdout: text.stdout };
}

const levelOf = (j: ValidateJson, name: string) => j.checks.filter((c) => c.name === name).map((c) => c.level);

describe('ckpt validate', () => {
  it('a good setup: one ok line per check, exit 0, and nothing is created', async () => {
    const ws = makeWorkspace({ onSuccess: { moveTo: 'done' } });
    fs.mkdirSync(path.join(ws.dir, 'done'));
    const r = await validate(ws.config, ws.dir);
    expect(r.code).toBe(0);
    expect(r.json.valid).toBe(true);
    expect(r.stdout).toMatch(/^ok +config +.*ckpt\.config\.json is valid$/m);
    expect(r.stdout).toMatch(/^ok +watch\[0\]\.dir +.*\/inbox \(writable, \w+\)$/m);
    expect(r.stdout).toMatch(/^ok +onSuccess\.moveTo +.*\/done \(writable, \w+\)$/m);
    expect(r.stdout).toMatch(/^warn +database folder +folder .*\/state does not exist yet: ckpt run creates it$/m);
    expect(r.stdout).toMatch(/^ok +handler +\/.*node can be run by this user$/m);
    expect(r.stdout).toMatch(/^ok +database +.*ckpt\.db does not exist yet: ckpt run creates it/m);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('valid: ckpt run can start with this configuration');
    // Read-only: unlike loadConfig(), validate does not create the database's folder.
    expect(fs.existsSync(path.dirname(ws.db))).toBe(false);
  });

  it('a config with several errors: every one of them, each with its key, exit 78', async () => {
    const ws = makeWorkspace({ concurrency: 'four', retry: { maxRetries: -1 }, watch: [{ dir: 'inbox', poll: 'sometimes' }], bogus: 1 });
    const r = await validate(ws.config, ws.dir);
    expect(r.code).toBe(78);
    const fails = r.json.checks.filter((c) => c.level === 'fail');
    expect(fails.map((c) => c.key).sort()).toEqual(['', 'concurrency', 'retry.maxRetries', 'watch[0].poll']);
    expect(r.stdout).toMatch(/^FAIL +config +.*ckpt\.config\.json: concurrency: expected an integer >= 1, got "four"$/m);
    expect(r.stdout).toMatch(/^FAIL +config +.*: unknown key "bogus"/m);
    expect(r.stdout).toMatch(/^warn +config +folders, handler and database not checked: fix the problems above first$/m);
  });

  it('rules across keys: both broken rules, and the folder and handler checks still run', async () => {
    const ws = makeWorkspace({ database: 'inbox/ckpt.db', onSuccess: { moveTo: 'inbox' }, onDead: { moveTo: 'no-such-dead' } });
    const r = await validate(ws.config, ws.dir);
    expect(r.code).toBe(78);
    const configFails = r.json.checks.filter((c) => c.name === 'config' && c.level === 'fail');
    expect(configFails.map((c) => c.key)).toEqual(['onSuccess.moveTo', 'database']);
    expect(levelOf(r.json, 'onDead.moveTo')).toEqual(['fail']);
    expect(r.stdout).toMatch(/^FAIL +onDead\.moveTo +folder .*\/no-such-dead does not exist \(create it, or set "createDirs": true\)$/m);
    expect(levelOf(r.json, 'handler')).toEqual(['ok']);
  });

  it("routes: each route's handler and after-action folder is checked on a line of its own; a cap above the total fails", async () => {
    const ws = makeWorkspace({
      concurrency: 2,
      watch: [
        { dir: 'inbox' },
        { dir: 'scans', handler: { command: ['no-such-ocr-x7', '{path}'] }, concurrency: 3, onDead: { moveTo: 'no-such-dead' } },
        { dir: 'mods', handler: { module: 'h.mjs' } },
      ],
    });
    for (const d of ['scans', 'mods']) fs.mkdirSync(path.join(ws.dir, d));
    fs.writeFileSync(path.join(ws.dir, 'h.mjs'), 'export default async () => {};\n');
    const r = await validate(ws.config, ws.dir);
    expect(r.code).toBe(78);
    expect(r.json.checks.filter((c) => c.name === 'config' && c.level === 'fail').map((c) => c.key)).toEqual(['watch[1].concurrency']);
    expect(levelOf(r.json, 'handler')).toEqual(['ok']);
    expect(levelOf(r.json, 'watch[1].handler')).toEqual(['fail']);
    expect(levelOf(r.json, 'watch[2].handler')).toEqual(['ok']);
    expect(levelOf(r.json, 'watch[1].onDead.moveTo')).toEqual(['fail']);
    expect(r.stdout).toMatch(/^FAIL +watch\[1\]\.handler +.*: watch\[1\]\.handler\.command\[0\]: cannot run "no-such-ocr-x7": not found in PATH/m);
    expect(r.stdout).toMatch(/^ok +watch\[2\]\.handler +module .*\/h\.mjs loads$/m);
  });

  it('a handler program that is not there: FAIL, exit 78', async () => {
    const ws = makeWorkspace({ handler: { command: ['no-such-loader-x7', '{path}'] } });
    const r = await validate(ws.config, ws.dir);
    expect(r.code).toBe(78);
    expect(r.stdout).toMatch(/^FAIL +handler +.*handler\.command\[0\]: cannot run "no-such-loader-x7": not found in PATH/m);
  });

  it('a module handler that throws while loading, or has no default export: FAIL, exit 78', async () => {
    const ws = makeWorkspace({ handler: { module: 'broken.mjs' } });
    fs.writeFileSync(path.join(ws.dir, 'broken.mjs'), "throw new Error('sink credentials missing');\n");
    const a = await validate(ws.config, ws.dir);
    expect(a.code).toBe(78);
    expect(a.stdout).toMatch(/^FAIL +handler +.*handler\.module: .*sink credentials missing/m);

    fs.writeFileSync(path.join(ws.dir, 'broken.mjs'), 'export const handle = () => {};\n');
    const b = await validate(ws.config, ws.dir);
    expect(b.code).toBe(78);
    expect(b.stdout).toMatch(/^FAIL +handler +.*must have a default export that is a function.*its default export is missing/m);

    fs.writeFileSync(path.join(ws.dir, 'broken.mjs'), 'export default async function () {}\n');
    expect((await validate(ws.config, ws.dir)).code).toBe(0);
  });

  it('an existing database: its schema version; locked by the sqlite3 shell: a warn, still exit 0', async () => {
    const ws = makeWorkspace({ lockTimeoutMs: 300 });
    await seedStore(ws);
    const open = await validate(ws.config, ws.dir);
    expect(open.code).toBe(0);
    expect(open.stdout).toMatch(/^ok +database +.*ckpt\.db opens \(read-only, [\d.]+ KiB\)$/m);
    expect(open.stdout).toMatch(/^ok +schema +.*ckpt\.db: schema version \d+ \(current\)$/m);

    const shell = await holdLock(ws.db, 'locking-mode-exclusive');
    const locked = await validate(ws.config, ws.dir);
    await shell.release();
    expect(locked.code).toBe(0);
    expect(locked.json.valid).toBe(true);
    expect(locked.stdout).toMatch(/^warn +database +.*ckpt\.db is locked by another process \(.*\): ckpt run starts and works degraded until the lock goes$/m);
  });

  it('a daemon degraded by a lock: the mode line says so as a warn, exit 0', async () => {
    const s = setup({ lockTimeoutMs: 500 });
    const d = startDaemon(s);
    await started(d);
    const shell = await holdLock(s.db, 'begin-exclusive');
    drop(s.inbox, 'during-lock.csv', 'x\n');
    await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('database unavailable: switching to degraded mode'));
    const r = await validate(s.config, s.dir);
    await shell.release();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^warn +mode +\S+ \(pid \d+\) degraded for \d+ s \(locked\): .*lock/m);
  });

  it.skipIf(!runningAsRoot || nobody.skipReason !== null)('a moveTo folder the daemon user cannot write: FAIL when run as that user, ok as its owner', async () => {
    const ws = makeWorkspace({ onSuccess: { moveTo: 'done' } });
    nobody.own(ws.dir);
    const done = path.join(ws.dir, 'done');
    fs.mkdirSync(done, { mode: 0o755 }); // owned by root: others may enter, not write
    const [cmd, ...pre] = nobody.prefix();
    const r = await exec(cmd!, [...pre, nobody.node(), nobody.copyOf(CLI), 'validate', '--config', ws.config, '--json'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(78);
    const j = JSON.parse(r.stdout) as ValidateJson;
    const check = j.checks.find((c) => c.name === 'onSuccess.moveTo');
    expect(check?.level).toBe('fail');
    expect(check?.message).toBe(`folder ${done} is not writable by this user (uid ${nobody.uid})`);
    expect(levelOf(j, 'watch[0].dir')).toEqual(['ok']);
    expect((await validate(ws.config, ws.dir)).code).toBe(0);
  });
});
