/**
 * `ckpt top` without a terminal (stdout a pipe, as in a script): one snapshot and exit 0, as
 * text or as one JSON line; file names with control characters printed escaped.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { ckpt, killAll } from './cli-helper.js';
import { SEED_RETRY, WORKER, makeWorkspace, seedStore, type Workspace } from './workspace.js';

afterEach(() => {
  killAll();
  cleanupTmpDirs();
});

/** A name that would clear the screen and break the line if printed as it is. */
const HOSTILE = 'evil\x1b[2J\nname.csv';

async function seeded(): Promise<Workspace> {
  const ws = makeWorkspace();
  const now = Date.now();
  await seedStore(ws, now);
  const store = new SqliteStore(ws.db, { retry: SEED_RETRY });
  try {
    const p = ws.file(HOSTILE);
    fs.writeFileSync(p, 'x\n');
    await store.discover([{ fileUrl: p, fileType: 'csv', mtimeMs: now, size: 2, fingerprint: 'hostile' }], now - 1_000);
    const c = await store.claimFile(p, { workerId: WORKER, leaseMs: 60_000, now: now - 500 });
    await store.fail({ fileUrl: p, token: c!.token, error: `bad byte\x07 in ${HOSTILE}`, permanent: true, now: now - 100, durationMs: 1 });
  } finally {
    await store.close();
  }
  return ws;
}

interface TopJson {
  counts: Record<string, number>;
  mode: { state: string };
  rates: { windowMs: number; discovered: number; completed: number; failed: number; perSecond: { discovered: number; completed: number; failed: number } }[];
  backlog: { folder: string; fileType: string; pending: number; retrying: number; oldestPendingAgeSeconds: number | null }[];
  inFlight: { fileUrl: string; workerId: string; attempt: number; elapsedSeconds: number }[];
  failures: { fileUrl: string; attempt: number; outcome: string; summary: string }[];
  workers: { workerId: string; state: string }[];
}

describe('ckpt top without a terminal', () => {
  it('--json: one line with the status report, rates, backlog, files in flight and failures', async () => {
    const ws = await seeded();
    const r = await ckpt(['top', '--json'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toHaveLength(2);
    const s = r.json<TopJson>();
    expect(s.counts).toEqual({ pending: 2, processing: 1, completed: 3, failed: 1, dead: 2 });
    expect(s.mode.state).toBe('normal');
    expect(s.rates.map((x) => x.windowMs)).toEqual([5_000, 60_000]);
    expect(s.rates[1]).toMatchObject({ discovered: 9, completed: 3, failed: 4 });
    expect(s.rates[1]!.perSecond).toEqual({ discovered: 0.15, completed: 0.05, failed: 0.067 });
    expect(s.backlog).toEqual([
      { folder: ws.inbox, fileType: 'csv', pending: 1, retrying: 1, oldestPendingAt: expect.any(String), oldestPendingAgeSeconds: expect.any(Number) },
      { folder: ws.inbox, fileType: 'json', pending: 1, retrying: 0, oldestPendingAt: expect.any(String), oldestPendingAgeSeconds: expect.any(Number) },
    ]);
    expect(s.backlog[0]!.oldestPendingAgeSeconds).toBeGreaterThanOrEqual(30);
    expect(s.inFlight).toEqual([expect.objectContaining({ fileUrl: ws.file('slow.csv'), workerId: WORKER, attempt: 1 })]);
    expect(s.inFlight[0]!.elapsedSeconds).toBeGreaterThanOrEqual(2);
    expect(s.failures.map((f) => [f.fileUrl, f.attempt, f.outcome, f.summary])).toEqual([
      // The one-line summary joins the error's first and last line (errorSummary).
      [ws.file(HOSTILE), 1, 'dead', 'bad byte\\x07 in evil\\x1b[2J: name.csv'],
      [ws.file('flaky.csv'), 1, 'timeout', 'timeout after 5000 ms'],
      [ws.file('bad.csv'), 2, 'dead', 'exit code 65: line 3: expected 2 columns, got 3'],
      [ws.file('bad.csv'), 1, 'failed', 'exit code 1: connection refused'],
    ]);
    expect(s.workers).toEqual([expect.objectContaining({ workerId: WORKER, state: 'live' })]);
  });

  it('one text snapshot, every row, names escaped; no screen control codes', async () => {
    const ws = await seeded();
    const r = await ckpt(['top'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex
    expect(r.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f]/);
    expect(r.stdout).not.toContain('q quits');
    expect(r.stdout).toMatch(new RegExp(`^ckpt top {2}\\d\\d:\\d\\d:\\d\\d UTC {2}${ws.db}$`, 'm'));
    expect(r.stdout).toMatch(/^mode +normal$/m);
    expect(r.stdout).toMatch(/^files +pending 2 {2}processing 1 {2}completed 3 {2}failed 1 {2}dead 2$/m);
    expect(r.stdout).toMatch(/^last 1m +0\.1 +0\.05 +0\.07$/m);
    expect(r.stdout).toMatch(new RegExp(`^ +\\d+(\\.\\d)?s +1 +${WORKER} +${ws.file('slow.csv')}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^ +1 +1 +\\S+ +csv +${ws.inbox}$`, 'm'));
    expect(r.stdout).toMatch(/ +1 +dead +\S+\/evil\\x1b\[2J\\nname\.csv +bad byte\\x07 in evil\\x1b\[2J: name\.csv$/m);
    expect(r.stdout).toMatch(/ 2 +dead +\S+bad\.csv +exit code 65: line 3: expected 2 columns, got 3$/m);
  });

  it('--once: a missing database is exit 69 in one line, as for status', async () => {
    const ws = makeWorkspace();
    const r = await ckpt(['top', '--once'], { cwd: ws.dir });
    expect(r.code).toBe(69);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no database at/);
  });
});
