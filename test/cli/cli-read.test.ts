/**
 * The `ckpt` command line as a user meets it: a real child process, a real config file, and a
 * real database written by the store. The reading commands: status, list, show.
 */
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { ckpt, cliEntry, killAll } from './cli-helper.js';
import { BAD_ERROR, SEED, WORKER, makeWorkspace, seedStore, type Workspace } from './workspace.js';

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
  handler: { available: boolean; unavailable: unknown[] };
  workers: { workerId: string; host: string; pid: number; mode: string; heartbeatAt: string; heartbeatAgeSeconds: number; state: string }[];
}

describe('status', () => {
  it('--json: counts, oldest pending, recent outcomes, mode and workers', async () => {
    const ws = await seeded();
    const r = await ckpt(['status', '--json'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    const s = r.json<StatusJson>();
    expect(Object.keys(s)).toEqual(['database', 'generatedAt', 'counts', 'total', 'oldestPending', 'lastMinute', 'lastHour', 'mode', 'handler', 'workers']);
    expect(s.handler).toEqual({ available: true, unavailable: [] });
    expect(s.database).toBe(ws.db);
    expect(s.counts).toEqual({ pending: 2, processing: 1, completed: 3, failed: 1, dead: 1 });
    expect(s.total).toBe(8);
    expect(s.oldestPending?.ageSeconds).toBeGreaterThanOrEqual(30);
    expect(s.lastHour).toEqual({ completed: 3, failed: 3 });
    expect(s.lastMinute).toEqual({ completed: 3, failed: 3 });
    expect(s.mode).toEqual({ state: 'normal', since: null, reason: null, workers: [] });
    expect(s.workers).toHaveLength(1);
    expect(s.workers[0]).toMatchObject({ workerId: WORKER, pid: process.pid, mode: 'normal', state: 'live' });
  });

  it('reports degraded mode from a live worker, since when and why', async () => {
    const ws = await seeded();
    const store = new SqliteStore(ws.db);
    const since = Date.now() - 90_000;
    await store.touchWorker({ workerId: 'other:1', host: 'elsewhere', pid: 1, mode: 'degraded', modeSince: since, modeReason: 'database locked for 5 s' }, Date.now());
    // A dead worker's old row: not live, so its mode does not count.
    await store.touchWorker({ workerId: 'ghost:2', host: 'elsewhere', pid: 2, mode: 'degraded', modeSince: since, modeReason: 'old news' }, Date.now() - 3_600_000);
    await store.close();
    const json = (await ckpt(['status', '--json'], { cwd: ws.dir })).json<StatusJson>();
    expect(json.mode).toEqual({ state: 'degraded', since: new Date(since).toISOString(), reason: 'database locked for 5 s', workers: ['other:1'] });
    expect(json.workers.find((w) => w.workerId === 'ghost:2')?.state).toBe('stale');
    const human = await ckpt(['status'], { cwd: ws.dir });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/mode\s+DEGRADED since \S+ \(\d+m \d\ds ago\)/);
    expect(human.stdout).toMatch(/why\s+database locked for 5 s/);
  });

  it('human output: aligned tables of counts and workers', async () => {
    const ws = await seeded();
    const r = await ckpt(['status'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^STATUS\s+FILES$/m);
    expect(r.stdout).toMatch(/^completed\s+3$/m);
    expect(r.stdout).toMatch(/^total\s+8$/m);
    expect(r.stdout).toMatch(/^last hour\s+3 completed, 3 failed$/m);
    expect(r.stdout).toMatch(/^WORKER\s+HOST\s+PID\s+MODE\s+STARTED\s+HEARTBEAT\s+STATE$/m);
    expect(r.stdout).toContain(`${WORKER} `);
    // Right-aligned counts: every count line ends in the same column.
    const countLines = r.stdout.split('\n').filter((l) => /^(pending|processing|completed|failed|dead|total)\s+\d+$/.test(l));
    expect(new Set(countLines.map((l) => l.length)).size).toBe(1);
  });
});

interface ListJson {
  files: { file: string; status: string; type: string; attempts: number; failures: number; error: string | null; records: { total: number } }[];
  truncated: boolean;
}

describe('list', () => {
  it('filters by status, type, age; limits; JSON shape', async () => {
    const ws = await seeded();
    const all = (await ckpt(['list', '--json'], { cwd: ws.dir })).json<ListJson>();
    expect(all.truncated).toBe(false);
    expect(all.files.map((f) => path.basename(f.file)).sort()).toEqual(
      [...SEED.completed, ...SEED.dead, ...SEED.failed, ...SEED.processing, ...SEED.pending].sort(),
    );
    expect(Object.keys(all.files[0]!)).toEqual([
      'file', 'type', 'status', 'version', 'attempts', 'failures', 'records', 'size', 'mtime', 'durationMs', 'error',
      'processedBy', 'handlerPid', 'afterAction', 'createdAt', 'startedAt', 'completedAt', 'dueAt', 'updatedAt',
    ]);

    const dead = (await ckpt(['list', '--status', 'dead', '--json'], { cwd: ws.dir })).json<ListJson>();
    expect(dead.files).toHaveLength(1);
    expect(dead.files[0]).toMatchObject({ file: ws.file('bad.csv'), status: 'dead', attempts: 2, error: BAD_ERROR });

    const json = (await ckpt(['list', '--type', 'json', '--json'], { cwd: ws.dir })).json<ListJson>();
    expect(json.files.map((f) => path.basename(f.file))).toEqual(['newer.json']);

    const limited = (await ckpt(['list', '--limit', '2', '--json'], { cwd: ws.dir })).json<ListJson>();
    expect(limited).toMatchObject({ truncated: true });
    expect(limited.files).toHaveLength(2);

    const hour = (await ckpt(['list', '--since', '1h', '--json'], { cwd: ws.dir })).json<ListJson>();
    expect(hour.files).toHaveLength(8);
    // Completed 19 s before the seed finished: never within 15 s of now.
    const recent = (await ckpt(['list', '--since', '15s', '--json'], { cwd: ws.dir })).json<ListJson>();
    for (const f of recent.files) expect(['bad.csv', 'flaky.csv', 'slow.csv']).toContain(path.basename(f.file));
  });

  it('human output: a header, one aligned row per file, the error column, hostile names escaped', async () => {
    const ws = await seeded();
    const store = new SqliteStore(ws.db);
    const hostile = ws.file('evil\nname\t\u001b[31m.csv');
    await store.discover([{ fileUrl: hostile, fileType: 'csv', mtimeMs: 0, size: 1, fingerprint: 'x' }], Date.now());
    await store.close();
    const r = await ckpt(['list'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + 9);
    expect(lines[0]).toMatch(/^STATUS\s+TYPE\s+TRIES\s+RECORDS\s+UPDATED\s+ERROR\s+FILE$/);
    expect(r.stdout).toContain('evil\\nname\\t\\x1b[31m.csv');
    expect(r.stdout).not.toContain('\u001b');
    const fileColumn = lines[0]!.indexOf('FILE');
    for (const l of lines.slice(1)) expect(l.slice(fileColumn)).toMatch(/^\//);
    expect(lines.find((l) => l.includes('bad.csv'))).toMatch(/^dead\s+csv\s+2\s+-\s+\S+ ago\s+exit code 65: line 3: expected 2 columns, got 3\s+\//);
    expect(lines.find((l) => l.includes('a.csv'))).toMatch(/^completed\s+csv\s+1\s+9\/10\s/);
  });

  it('says when nothing matches', async () => {
    const ws = await seeded();
    const r = await ckpt(['list', '--type', 'xml'], { cwd: ws.dir });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('no files match');
  });
});

describe('show', () => {
  it('a relative path: the record and every attempt; --json shape', async () => {
    const ws = await seeded();
    const human = await ckpt(['show', 'inbox/bad.csv'], { cwd: ws.dir });
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^file\s+.*\/inbox\/bad\.csv$/m);
    expect(human.stdout).toMatch(/^status\s+dead$/m);
    expect(human.stdout).toMatch(/^error\s+exit code 65 \(EX_DATAERR: the handler rejected the file\); stderr:\n\s+line 3: expected 2 columns, got 3$/m);
    expect(human.stdout).toMatch(/^VERSION\s+ATTEMPT\s+WORKER\s+STARTED\s+DURATION\s+OUTCOME\s+ERROR \/ AFTER ACTION$/m);
    expect(human.stdout).toMatch(/^\s+1\s+1\s+\S+\s+\S+\s+2\.0s\s+failed\s+exit code 1: connection refused$/m);
    expect(human.stdout).toMatch(/^\s+1\s+2\s+\S+\s+\S+\s+1\.0s\s+dead\s+exit code 65: line 3: expected 2 columns, got 3$/m);

    const json = (await ckpt(['show', ws.file('a.csv'), '--json'], { cwd: ws.dir })).json<{ file: { file: string; status: string; afterAction: string }; attempts: Record<string, unknown>[] }>();
    expect(json.file).toMatchObject({ file: ws.file('a.csv'), status: 'completed', afterAction: 'keep' });
    expect(json.attempts).toHaveLength(1);
    expect(Object.keys(json.attempts[0]!)).toEqual(['version', 'attempt', 'worker', 'startedAt', 'endedAt', 'durationMs', 'outcome', 'error', 'afterAction']);
    expect(json.attempts[0]).toMatchObject({ worker: WORKER, outcome: 'completed', durationMs: 900, afterAction: 'keep' });
  });

  it('a file the ledger does not know: 65', async () => {
    const ws = await seeded();
    const r = await ckpt(['show', 'inbox/nope.csv'], { cwd: ws.dir });
    expect(r.code).toBe(65);
    oneLine(r.stderr);
    expect(r.stderr).toContain(`${ws.file('nope.csv')}: not in the ledger`);
  });
});

