/**
 * Requeueing as an operator meets it: `ckpt run --once`, `retry`, `purge`, `show` and `list` as
 * real child processes over a real folder and ledger, with `ckpt init`'s layout (onSuccess moves
 * to done/, onDead to dead/) and a handler whose outcome is the file's content.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { killDaemons, setup, startDaemon, started } from '../helpers/daemon.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { ckpt, cliEntry, killAll } from './cli-helper.js';

const HANDLER = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures', 'outcome-handler.mjs');

afterEach(() => {
  killAll();
  killDaemons();
  cleanupTmpDirs();
});

interface Folder {
  dir: string;
  inbox: string;
  done: string;
  dead: string;
  db: string;
}

function folder(extra: Record<string, unknown> = {}): Folder {
  const dir = tmpDir('ckpt-requeue-');
  const f = { dir, inbox: path.join(dir, 'inbox'), done: path.join(dir, 'done'), dead: path.join(dir, 'dead'), db: path.join(dir, 'var', 'ckpt.db') };
  // The folders `ckpt init` makes.
  for (const d of [f.inbox, f.done, f.dead, path.dirname(f.db)]) fs.mkdirSync(d);
  fs.writeFileSync(
    path.join(dir, 'ckpt.config.json'),
    JSON.stringify({
      database: 'var/ckpt.db',
      watch: [{ dir: 'inbox', include: ['*.csv'], fileType: 'csv' }],
      handler: { command: [process.execPath, HANDLER, '{path}'] },
      stableMs: 100,
      retry: { maxRetries: 1, baseDelayMs: 50, maxDelayMs: 100 },
      onSuccess: { moveTo: 'done' },
      onDead: { moveTo: 'dead' },
      log: { level: 'info', format: 'json' },
      ...extra,
    }),
  );
  return f;
}

type LogLine = Record<string, unknown> & { msg: string };

/**
 * `ckpt run --once`, killed (SIGKILL: a SIGTERM would end it cleanly and hide the hang) if it
 * has not ended by itself within `limitMs`.
 */
function runOnce(f: Folder, limitMs = 30_000): Promise<{ code: number | null; lines: LogLine[]; text: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CKPT_') && k !== 'NOTIFY_SOCKET') env[k] = v;
    const child = spawn(process.execPath, [...cliEntry(), 'run', '--once'], { cwd: f.dir, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: limitMs, killSignal: 'SIGKILL' });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
      resolve({ code, lines, text });
    });
  });
}

function write(file: string, body: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, body);
}

interface ShowJson {
  file: { status: string; version: number };
  attempts: { version: number; attempt: number; outcome: string; error: string | null; afterAction: string | null; worker: string }[];
}

describe('retry of a file the after-action moved away', () => {
  it('retry --dead brings a file onDead moved back to its path; it runs once; show tells the whole story', async () => {
    const f = folder();
    write(path.join(f.inbox, 'bad.csv'), 'id,name\n1,BAD\n');
    const first = await runOnce(f);
    expect(first.code, first.text).toBe(1);
    const deadLine = first.lines.find((l) => l.outcome === 'dead');
    // A permanent failure (exit 65) says so, not "no more retries".
    expect(deadLine?.msg).toBe('dead: permanent failure');
    expect(fs.existsSync(path.join(f.dead, 'bad.csv'))).toBe(true);

    // Named where onDead put it, the file is found under the path it came from.
    const whereItLies = (await ckpt(['show', 'dead/bad.csv', '--json'], { cwd: f.dir })).json<ShowJson>();
    expect(whereItLies.file.status).toBe('dead');
    // The operator fixes the file where onDead put it, then requeues.
    write(path.join(f.dead, 'bad.csv'), 'id,name\n1,fixed\n');
    const retry = await ckpt(['retry', '--dead'], { cwd: f.dir });
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stdout).toContain(`moved back: ${path.join(f.dead, 'bad.csv')} -> ${path.join(f.inbox, 'bad.csv')}`);
    expect(retry.stdout).toContain('requeued 1 file (dead)');
    expect(fs.existsSync(path.join(f.dead, 'bad.csv'))).toBe(false);
    expect(fs.readFileSync(path.join(f.inbox, 'bad.csv'), 'utf8')).toBe('id,name\n1,fixed\n');

    const second = await runOnce(f);
    expect(second.code, second.text).toBe(0);
    expect(second.lines.filter((l) => l.outcome === 'completed')).toHaveLength(1);
    expect(second.text).not.toContain('vanished');
    expect(second.text).not.toContain('"stack"');
    expect(fs.readFileSync(path.join(f.done, 'bad.csv'), 'utf8')).toBe('id,name\n1,fixed\n');

    const shown = (await ckpt(['show', 'inbox/bad.csv', '--json'], { cwd: f.dir })).json<ShowJson>();
    expect(shown.file.status).toBe('completed');
    expect(shown.attempts.map((a) => [a.attempt, a.outcome, a.afterAction])).toEqual([
      [1, 'dead', `moved to ${path.join(f.dead, 'bad.csv')}`],
      [1, 'requeued', `moved back from ${path.join(f.dead, 'bad.csv')}`],
      [2, 'completed', `move:${f.done}`],
    ]);
    // The first failure's error stays in the history.
    expect(shown.attempts[0]?.error).toContain('expected 2 columns, got 3');
    expect(shown.attempts[1]?.worker).toMatch(/^ckpt retry/);
    const text = (await ckpt(['show', 'inbox/bad.csv'], { cwd: f.dir })).stdout;
    expect(text).toMatch(/^moved to +.*done\/bad\.csv$/m);
    expect(text).toMatch(/requeued +moved back from .*dead\/bad\.csv/);
  }, 90_000);

  it('with the daemon running, a file brought back by retry --dead runs exactly once', async () => {
    const s = setup({ handler: { command: [process.execPath, HANDLER, '{path}'] }, onSuccess: { moveTo: 'done' }, onDead: { moveTo: 'dead' }, createDirs: true });
    const d = startDaemon(s);
    await started(d);
    const file = path.join(s.inbox, 'r.csv');
    write(file, 'id,name\n1,BAD\n');
    await d.waitForLog((l) => l.path === file && l.outcome === 'dead');
    await waitFor(() => fs.existsSync(path.join(s.dir, 'dead', 'r.csv')));
    write(path.join(s.dir, 'dead', 'r.csv'), 'id,name\n1,fixed\n');
    const retry = await ckpt(['retry', '--dead', '--config', s.config], { cwd: s.dir });
    expect(retry.code, retry.stderr).toBe(0);
    await d.waitForLog((l) => l.path === file && l.outcome === 'completed');
    await waitFor(() => fs.existsSync(path.join(s.dir, 'done', 'r.csv')));
    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    const outcomes = d.lines.filter((l) => l.path === file && typeof l.outcome === 'string' && l.attempt !== undefined).map((l) => [l.attempt, l.outcome]);
    expect(outcomes).toEqual([
      [1, 'dead'],
      [2, 'completed'],
    ]);
    expect(fs.readdirSync(path.join(s.dir, 'dead'))).toEqual([]);
  }, 90_000);

  it('refuses a file whose path is taken by another file, or that is gone, and changes nothing', async () => {
    const f = folder();
    write(path.join(f.inbox, 'taken.csv'), 'id,name\n1,BAD\n');
    write(path.join(f.inbox, 'gone.csv'), 'id,name\n2,BAD\n');
    expect((await runOnce(f)).code).toBe(1);
    // A new file dropped under the same name while no daemon runs; the other dead file deleted by hand.
    write(path.join(f.inbox, 'taken.csv'), 'id,name\n3,new\n');
    fs.unlinkSync(path.join(f.dead, 'gone.csv'));

    const retry = await ckpt(['retry', '--dead', '--json'], { cwd: f.dir });
    expect(retry.code).toBe(65);
    const doc = retry.json<{ requeued: number; refused: { file: string; reason: string }[] }>();
    expect(doc.requeued).toBe(0);
    expect(doc.refused).toEqual([
      { file: path.join(f.inbox, 'gone.csv'), reason: expect.stringContaining(`neither at this path nor at ${path.join(f.dead, 'gone.csv')}`) },
      { file: path.join(f.inbox, 'taken.csv'), reason: `the path is taken by another file; the dead one stays at ${path.join(f.dead, 'taken.csv')}` },
    ]);
    expect(fs.readFileSync(path.join(f.inbox, 'taken.csv'), 'utf8')).toBe('id,name\n3,new\n');
    expect(fs.readFileSync(path.join(f.dead, 'taken.csv'), 'utf8')).toBe('id,name\n1,BAD\n');
    const list = (await ckpt(['list', '--status', 'dead', '--json'], { cwd: f.dir })).json<{ files: { status: string }[] } | { status: string }[]>();
    expect(JSON.stringify(list)).not.toContain('pending');
  }, 90_000);

  it('a retry killed after bringing the file back (two names of one file) is finished by the next one', async () => {
    const f = folder();
    write(path.join(f.inbox, 'x.csv'), 'id,name\n1,BAD\n');
    expect((await runOnce(f)).code).toBe(1);
    fs.linkSync(path.join(f.dead, 'x.csv'), path.join(f.inbox, 'x.csv'));
    const retry = await ckpt(['retry', 'inbox/x.csv', '--json'], { cwd: f.dir });
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.json()).toMatchObject({ requeued: 1, movedBack: [{ file: path.join(f.inbox, 'x.csv'), from: path.join(f.dead, 'x.csv') }], refused: [] });
    expect(fs.existsSync(path.join(f.dead, 'x.csv'))).toBe(false);
    expect(fs.statSync(path.join(f.inbox, 'x.csv')).nlink).toBe(1);
  }, 60_000);

  it('retry FILE of a completed, moved file is refused, saying where it went', async () => {
    const f = folder();
    write(path.join(f.inbox, 'ok.csv'), 'id,name\n1,x\n');
    expect((await runOnce(f)).code).toBe(0);
    const r = await ckpt(['retry', 'inbox/ok.csv'], { cwd: f.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('requeued 0 files');
    expect(r.stderr).toContain(`not requeued: ${path.join(f.inbox, 'ok.csv')}: completed `);
    expect(r.stderr).toContain(`(moved to ${path.join(f.done, 'ok.csv')}); ckpt runs a completed file once`);
    // Named where onSuccess put it: the same answer.
    const there = await ckpt(['retry', 'done/ok.csv'], { cwd: f.dir });
    expect(there.code, there.stderr).toBe(0);
    expect(there.stderr).toContain(`not requeued: ${path.join(f.inbox, 'ok.csv')}: completed `);
  }, 60_000);

  it('a file gone before it was handled is dead with no after-action and no stack trace in the log', async () => {
    const f = folder();
    // A row for a file that is not there (deleted between discovery and the claim).
    const store = new SqliteStore(f.db);
    await store.discover([{ fileUrl: path.join(f.inbox, 'ghost.csv'), fileType: 'csv', mtimeMs: Date.now(), size: 1, fingerprint: '1:1:1:1' }], Date.now());
    await store.close();
    const r = await runOnce(f);
    const dead = r.lines.find((l) => l.outcome === 'dead');
    expect(dead, r.text).toMatchObject({ kind: 'vanished', afterAction: 'none (the file was gone)' });
    expect(r.text).not.toContain('"stack"');
    expect(r.lines.filter((l) => l.msg.startsWith('after-action failed'))).toEqual([]);
  }, 60_000);
});

describe('purged files', () => {
  it('run --once ends, show says purged, and retry FILE lets one run again', async () => {
    const f = folder({ onSuccess: 'keep' });
    write(path.join(f.inbox, 'a.csv'), 'id,name\n1,x\n');
    write(path.join(f.inbox, 'b.csv'), 'id,name\n2,y\n');
    expect((await runOnce(f)).code).toBe(0);
    const purge = await ckpt(['purge', '--older-than', '1ms'], { cwd: f.dir });
    expect(purge.stdout).toMatch(/^purged 2 completed files/);

    const again = await runOnce(f);
    expect(again.code, again.text).toBe(0);
    expect(again.lines.find((l) => l.msg === '--once: every file is settled')).toMatchObject({ files: 2, completed: 0, purged: 2 });

    const shown = await ckpt(['show', 'inbox/a.csv'], { cwd: f.dir });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^status +purged on \d{4}-\d\d-\d\dT[\d:.]+Z \(.* ago\), kept from re-running by a tombstone$/m);

    const retry = await ckpt(['retry', 'inbox/a.csv'], { cwd: f.dir });
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stdout).toMatch(/^tombstone lifted \(purged .*\): .*inbox\/a\.csv will run again$/m);
    expect(retry.stdout).toContain('requeued 1 file');

    const third = await runOnce(f);
    expect(third.code, third.text).toBe(0);
    expect(third.lines.filter((l) => l.outcome === 'completed').map((l) => l.path)).toEqual([path.join(f.inbox, 'a.csv')]);
    const a = (await ckpt(['show', 'inbox/a.csv', '--json'], { cwd: f.dir })).json<ShowJson>();
    expect(a.file).toMatchObject({ status: 'completed', version: 2 });
    expect(a.attempts.map((x) => [x.version, x.outcome])).toEqual([
      [2, 'requeued'],
      [2, 'completed'],
    ]);
    // b.csv stays purged: one command per file, and only for the file named.
    expect((await ckpt(['show', 'inbox/b.csv'], { cwd: f.dir })).stdout).toContain('kept from re-running by a tombstone');
  }, 120_000);
});
