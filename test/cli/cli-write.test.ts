/**
 * The `ckpt` command line as a user meets it: a real child process, a real config file, and a
 * real database written by the store. The commands that change things: retry, purge, init, run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { ckpt, cliEntry, killAll } from './cli-helper.js';
import { makeWorkspace, seedStore, type Workspace } from './workspace.js';

afterEach(() => {
  killAll();
  cleanupTmpDirs();
});

beforeAll(() => {
  // Logged so a slow run can be told apart from a slow machine.
  console.log(`ckpt under test: node ${cliEntry().join(' ')}`);
});

function oneLine(stderr: string): void {
  expect(stderr.trim().split('\n')).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
}

async function seeded(): Promise<Workspace> {
  const ws = makeWorkspace();
  await seedStore(ws);
  return ws;
}

interface StatusJson {
  database: string;
  generatedAt: string;
  counts: Record<string, number>;
  total: number;
  oldestPending: { since: string; ageSeconds: number } | null;
  lastMinute: { completed: number; failed: number };
  lastHour: { completed: number; failed: number };
  mode: { state: string; since: string | null; reason: string | null; workers: string[] };
  workers: { workerId: string; host: string; pid: number; mode: string; heartbeatAt: string; heartbeatAgeSeconds: number; state: string }[];
}

describe('retry and purge', () => {
  it('retry FILE requeues a dead file and says so; unknown files exit 65; completed ones are skipped', async () => {
    const ws = await seeded();
    const r = await ckpt(['retry', 'inbox/bad.csv', 'inbox/a.csv'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('requeued 1 file');
    expect(r.stderr).toContain(`not requeued: ${ws.file('a.csv')}: completed `);
    expect(r.stderr).toContain('(kept at its path); ckpt runs a completed file once');
    const shown = (await ckpt(['show', 'inbox/bad.csv', '--json'], { cwd: ws.dir })).json<{ file: { status: string; failures: number } }>();
    expect(shown.file).toMatchObject({ status: 'pending', failures: 0 });

    const unknown = await ckpt(['retry', 'inbox/nope.csv', '--json'], { cwd: ws.dir });
    expect(unknown.code).toBe(65);
    expect(unknown.json()).toEqual({ requeued: 0, notFound: ['inbox/nope.csv'], skipped: [], movedBack: [], revived: [], refused: [] });
  });

  it('retry --dead [--type] requeues every dead file of the type', async () => {
    const ws = await seeded();
    const none = await ckpt(['retry', '--dead', '--type', 'json'], { cwd: ws.dir });
    expect(none.stdout.trim()).toBe('requeued 0 files (dead, type json)');
    const all = await ckpt(['retry', '--dead', '--json'], { cwd: ws.dir });
    expect(all.code).toBe(0);
    expect(all.json()).toEqual({ requeued: 1, notFound: [], skipped: [], movedBack: [], revived: [], refused: [] });
    const typeOnly = await ckpt(['retry', 'inbox/a.csv', '--type', 'csv'], { cwd: ws.dir });
    expect(typeOnly.code).toBe(64);
  });

  it('refuses a dead file that is no longer at its path, saying to put it back', async () => {
    const ws = await seeded();
    fs.mkdirSync(path.join(ws.dir, 'elsewhere'));
    fs.renameSync(ws.file('bad.csv'), path.join(ws.dir, 'elsewhere', 'bad.csv'));
    const r = await ckpt(['retry', '--dead'], { cwd: ws.dir });
    expect(r.code).toBe(65);
    expect(r.stdout.trim()).toBe('requeued 0 files (dead)');
    expect(r.stderr.trim()).toBe(`not requeued: ${ws.file('bad.csv')}: the file is no longer at this path; put it back and retry`);
    fs.renameSync(path.join(ws.dir, 'elsewhere', 'bad.csv'), ws.file('bad.csv'));
    expect((await ckpt(['retry', '--dead'], { cwd: ws.dir })).stdout.trim()).toBe('requeued 1 file (dead)');
  });

  it('purge --older-than removes old completed rows (dead only when asked) and says how many', async () => {
    const ws = await seeded();
    const young = await ckpt(['purge', '--older-than', '1h'], { cwd: ws.dir });
    expect(young.code, young.stderr).toBe(0);
    expect(young.stdout.trim()).toBe('purged 0 completed files unchanged for more than 1h');

    const r = await ckpt(['purge', '--older-than', '15s', '--json'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ purged: 3, statuses: ['completed'], olderThanMs: 15_000 });
    const counts = (await ckpt(['status', '--json'], { cwd: ws.dir })).json<StatusJson>().counts;
    expect(counts).toEqual({ pending: 2, processing: 1, completed: 0, failed: 1, dead: 1 });

    const dead = await ckpt(['purge', '--older-than', '1s', '--status', 'dead'], { cwd: ws.dir });
    expect(dead.stdout.trim()).toMatch(/^purged 1 dead file unchanged for more than 1s \(tombstones/);
  });
});

describe('init', () => {
  it('writes a config that loads, an inbox and a handler; prints next steps; refuses to overwrite', async () => {
    const parent = tmpDir();
    const r = await ckpt(['init', 'ingest'], { cwd: parent });
    expect(r.code, r.stderr).toBe(0);
    const dir = path.join(parent, 'ingest');
    for (const p of ['ckpt.config.json', 'handler.mjs', 'inbox', 'done', 'dead']) expect(fs.existsSync(path.join(dir, p)), p).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'handler.mjs'), 'utf8')).toBe(fs.readFileSync(new URL('../../scripts/example-handler.mjs', import.meta.url), 'utf8'));
    const cfg = loadConfig(path.join(dir, 'ckpt.config.json'), { env: {} });
    expect(cfg.watch[0]?.dir).toBe(path.join(dir, 'inbox'));
    // A starter box does not grow for ever: retention is on, with the windows it prints.
    expect(cfg.retention).toEqual({ completedMs: 30 * 86_400_000, deadMs: 90 * 86_400_000, tombstonesMs: 30 * 86_400_000 });
    expect(r.stdout).toContain('keeps the history of completed files 30 days, of dead ones 90 days');
    expect(r.stdout).toContain('Next steps:');
    expect(r.stdout).toContain('cd ingest');
    expect(r.stdout).toContain('ckpt run --once');

    const before = fs.readFileSync(path.join(dir, 'ckpt.config.json'), 'utf8');
    const again = await ckpt(['init', 'ingest'], { cwd: parent });
    expect(again.code).toBe(73);
    oneLine(again.stderr);
    expect(again.stderr).toContain('already exists');
    expect(fs.readFileSync(path.join(dir, 'ckpt.config.json'), 'utf8')).toBe(before);

    // Before the first run there is no ledger yet: status says so instead of creating one.
    const status = await ckpt(['status'], { cwd: dir });
    expect(status.code).toBe(69);
  });

  it('init, drop a CSV, run --once, then status shows it completed (the daemon end to end)', async () => {
    const parent = tmpDir();
    expect((await ckpt(['init', 'w'], { cwd: parent })).code).toBe(0);
    const dir = path.join(parent, 'w');
    // A short stability wait keeps the test quick; everything else is the starter as written.
    const cfgFile = path.join(dir, 'ckpt.config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), stableMs: 200 }));
    fs.writeFileSync(path.join(dir, 'inbox', 'example.csv'), 'id,name\n1,alpha\n2,beta\n');
    const run = await ckpt(['run', '--once', '--log-format', 'json'], { cwd: dir });
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(0);
    const status = (await ckpt(['status', '--json'], { cwd: dir })).json<StatusJson>();
    expect(status.counts.completed).toBe(1);
    // The ledger keys the file by where it was found (inbox/); named where it was moved, it is found too.
    const shown = (await ckpt(['show', path.join('done', 'example.csv'), '--json'], { cwd: dir })).json<{ file: { file: string } }>();
    expect(shown.file.file).toBe(path.join(fs.realpathSync(dir), 'inbox', 'example.csv'));
    const inboxShow = (await ckpt(['show', path.join('inbox', 'example.csv'), '--json'], { cwd: dir })).json<{ file: { records: { total: number }; afterAction: string } }>();
    expect(inboxShow.file.records.total).toBe(2);
    expect(inboxShow.file.afterAction).toMatch(/done/);
  });
});
