/**
 * `ckpt doctor` on what the database checks do not see: dead files waiting for a person, and a
 * handler that `ckpt run` would refuse. The real CLI over a real workspace.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { DoctorJson } from '../../src/cli/commands/doctor.js';
import { killChildren } from '../helpers/spawn.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { ckpt } from './cli-helper.js';
import { makeWorkspace, seedStore } from './workspace.js';

afterEach(() => {
  killChildren();
  cleanupTmpDirs();
});

describe('ckpt doctor: dead files and the handler', () => {
  it('dead files: a warn line with their count and the commands to see and requeue them; the last line does not say all is well', async () => {
    const ws = makeWorkspace();
    await seedStore(ws);
    const r = await ckpt(['doctor', '--config', ws.config], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^warn +dead files +1 file\(s\) used up their retries or failed permanently: see them with `ckpt list --status dead --config .*ckpt\.config\.json`, requeue with `ckpt retry --dead --config .*`$/m);
    expect(r.stdout).not.toMatch(/nothing needs a person/);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('dead files wait for a person: see the "dead files" line above');
    expect(r.stdout).toMatch(/^ok +handler +\/.*\/node can be run by this user$/m);
  });

  it('a handler program that cannot be run: FAIL with the line ckpt run exits 78 with, exit 69', async () => {
    const ws = makeWorkspace({ handler: { command: ['no-such-loader-x7', '{path}'] } });
    fs.mkdirSync(`${ws.dir}/state`);
    const r = await ckpt(['doctor', '--config', ws.config, '--json'], { cwd: ws.dir });
    expect(r.code).toBe(69);
    const j = r.json<DoctorJson>();
    expect(j.needsPerson).toBe(true);
    const h = j.checks.find((c) => c.name === 'handler');
    expect(h?.level).toBe('fail');
    expect(h?.message).toMatch(/ckpt\.config\.json: handler\.command\[0\]: cannot run "no-such-loader-x7": not found in PATH .*\(ckpt run refuses to start\)$/);
  });

  it("a route's handler program that cannot be run: its own FAIL line, exit 69, the top-level handler ok", async () => {
    const ws = makeWorkspace({ watch: [{ dir: 'inbox', handler: { command: ['no-such-ocr-x7', '{path}'] } }] });
    fs.mkdirSync(`${ws.dir}/state`);
    const r = await ckpt(['doctor', '--config', ws.config, '--json'], { cwd: ws.dir });
    expect(r.code).toBe(69);
    const j = r.json<DoctorJson>();
    expect(j.checks.find((c) => c.name === 'handler')?.level).toBe('ok');
    const h = j.checks.find((c) => c.name === 'watch[0].handler');
    expect(h?.level).toBe('fail');
    expect(h?.message).toMatch(/ckpt\.config\.json: watch\[0\]\.handler\.command\[0\]: cannot run "no-such-ocr-x7": not found in PATH .*\(ckpt run refuses to start\)$/);
  });
});
