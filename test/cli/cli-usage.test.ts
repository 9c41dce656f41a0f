/**
 * The `ckpt` command line as a user meets it (a real child process, a real config file, a real
 * database written by the store): help, version, and every way a command can fail to start.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
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

const version = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function oneLine(stderr: string): void {
  expect(stderr.trim().split('\n')).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
}

async function seeded(): Promise<Workspace> {
  const ws = makeWorkspace();
  await seedStore(ws);
  return ws;
}

describe('help, version, usage errors', () => {
  it('--help lists every command and exits 0; each command has its own --help', async () => {
    const dir = tmpDir();
    const r = await ckpt(['--help'], { cwd: dir });
    expect(r.code).toBe(0);
    for (const cmd of ['run', 'status', 'list', 'show', 'retry', 'purge', 'doctor', 'init']) expect(r.stdout).toContain(cmd);
    const helps = await Promise.all(['run', 'status', 'list', 'show', 'retry', 'purge', 'doctor', 'init'].map((c) => ckpt([c, '--help'], { cwd: dir })));
    for (const h of helps) {
      expect(h.code, h.stderr).toBe(0);
      expect(h.stdout).toMatch(/^Usage: ckpt \w+/);
      expect(h.stdout).toContain('--config <file>');
    }
  });

  it('--version prints the package version', async () => {
    const r = await ckpt(['--version'], { cwd: tmpDir() });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['status', '--bogus'], /unknown option '--bogus'.*ckpt status --help/],
    [['list', '--status', 'done'], /--status.*Allowed choices are pending, processing, completed, failed, dead/],
    [['list', '--since', '30'], /add a unit/],
    [['list', '--limit', 'ten'], /whole number/],
    [['purge'], /required option '--older-than <duration>'/],
    [['purge', '--older-than', '7d', '--status', 'pending'], /only finished files can be purged/],
    [['show'], /missing required argument 'file'/],
    [['retry'], /name the files to requeue, or pass --dead/],
    [['status', 'extra'], /too many arguments/],
  ])('ckpt %j exits 64 with one line', async (args, message) => {
    const r = await ckpt(args, { cwd: tmpDir() });
    expect(r.code).toBe(64);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('ckpt with no command prints the help on stderr and exits 64', async () => {
    const r = await ckpt([], { cwd: tmpDir() });
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('Usage: ckpt');
  });
});

describe('configuration and database errors', () => {
  it('a missing config file: 78, one line naming where it looked, no stack', async () => {
    const dir = tmpDir();
    const r = await ckpt(['status'], { cwd: dir });
    expect(r.code).toBe(78);
    oneLine(r.stderr);
    expect(r.stderr).toContain(path.join(dir, 'ckpt.config.json'));
  });

  it('a config with an unknown key: 78 and the key is named', async () => {
    const ws = makeWorkspace({ concurrenc: 4 });
    const r = await ckpt(['status', '--config', ws.config], { cwd: ws.dir });
    expect(r.code).toBe(78);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/concurrenc.*did you mean "concurrency"/);
  });

  it('--config works before or after the command, and CKPT_CONFIG is the default', async () => {
    const ws = await seeded();
    const elsewhere = tmpDir();
    const before = await ckpt(['--config', ws.config, 'status', '--json'], { cwd: elsewhere });
    const after = await ckpt(['status', '--json', '-c', ws.config], { cwd: elsewhere });
    const env = await ckpt(['status', '--json'], { cwd: elsewhere, env: { CKPT_CONFIG: ws.config } });
    for (const r of [before, after, env]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.json<{ total: number }>().total).toBe(8);
    }
  });

  it('no database yet: 69, and no database file is created', async () => {
    const ws = makeWorkspace();
    const r = await ckpt(['status'], { cwd: ws.dir });
    expect(r.code).toBe(69);
    oneLine(r.stderr);
    expect(r.stderr).toContain('no database at');
    expect(fs.existsSync(ws.db)).toBe(false);
  });

  it('a database that is not SQLite: 69', async () => {
    const ws = makeWorkspace();
    fs.mkdirSync(path.dirname(ws.db));
    fs.writeFileSync(ws.db, 'this is not a database, just text that is long enough to fill a header page'.repeat(20));
    const r = await ckpt(['list'], { cwd: ws.dir });
    expect(r.code).toBe(69);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/SQLITE_NOTADB|not a database/);
  });

  it('a database locked by another process (locking_mode=EXCLUSIVE): 69 after lockTimeoutMs', async () => {
    const ws = makeWorkspace({ lockTimeoutMs: 200 });
    await seedStore(ws);
    const holder = new Database(ws.db);
    try {
      holder.pragma('locking_mode = EXCLUSIVE');
      holder.prepare("UPDATE file_checkpoints SET updated_at = updated_at WHERE status = 'dead'").run();
      const r = await ckpt(['status'], { cwd: ws.dir });
      expect(r.code).toBe(69);
      oneLine(r.stderr);
      expect(r.stderr).toMatch(/locked|SQLITE_BUSY/);
    } finally {
      holder.close();
    }
  });

  it('a PostgreSQL database: 69 with a clear message that does not echo the URL', async () => {
    const ws = makeWorkspace({ database: 'postgres://ckpt:s3cret@db.invalid:5432/ckpt' });
    const r = await ckpt(['status'], { cwd: ws.dir });
    expect([69, 78]).toContain(r.code);
    expect(r.stderr).not.toContain('s3cret');
  });
});

