/**
 * Routes end to end: a real `ckpt run` watching two real folders, each feed with its own
 * handler (real child processes), cap, retry and after-actions. Feed A's handler is the gate
 * fixture, stuck until the test creates the gate file; feed B's is the recorder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, drop, killDaemons, records, rows, setup, type Setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

const GATE = path.join(REPO, 'test/fixtures/daemon/gate.mjs');

interface Feeds extends Setup {
  a: string;
  b: string;
  gate: string;
}

/** Folders a/ and b/ and a config watching both (merged with `overrides`); a's route runs the gate handler. */
function feeds(routeA: Record<string, unknown>, overrides: Record<string, unknown> = {}): Feeds {
  const s = setup();
  const gate = path.join(s.dir, 'gate');
  const cfg = {
    ...JSON.parse(fs.readFileSync(s.config, 'utf8')),
    watch: [{ dir: 'a', handler: { command: [process.execPath, GATE, gate, '{path}'] }, ...routeA }, { dir: 'b' }],
    ...overrides,
  };
  fs.writeFileSync(s.config, JSON.stringify(cfg, null, 2));
  for (const d of ['a', 'b']) fs.mkdirSync(path.join(s.dir, d));
  return { ...s, a: path.join(s.dir, 'a'), b: path.join(s.dir, 'b'), gate };
}

const startsOf = (s: Setup, handler: 'gate' | 'recorder') =>
  records(s).filter((r) => r.ev === 'start' && ((r as { handler?: string }).handler === 'gate') === (handler === 'gate'));

describe('routes', () => {
  it("one feed's stuck handler holds only its share of the slots: the other feed's files all complete meanwhile", async () => {
    // 2 slots in all, feed A capped at 1: A's 4 files come first in the queue, its handler never returns.
    const s = feeds({ concurrency: 1 }, { concurrency: 2 });
    const d = startDaemon(s);
    await started(d);
    const aFiles = [1, 2, 3, 4].map((i) => drop(s.a, `a${i}.csv`, 'x\n'));
    await waitFor(() => startsOf(s, 'gate').length >= 1, { message: "feed A's handler started" });
    const bFiles = [1, 2, 3, 4, 5].map((i) => drop(s.b, `b${i}.csv`, 'x\n'));
    await waitFor(() => bFiles.every((f) => statusOf(s.db, f) === 'completed'), { timeoutMs: 30_000, message: "feed B's files completed" });
    // A is still stuck on its one slot: one run started, none finished, the rest wait.
    expect(startsOf(s, 'gate').map((r) => r.file)).toHaveLength(1);
    expect(records(s).filter((r) => r.ev === 'end' && (r as { handler?: string }).handler === 'gate')).toEqual([]);
    expect(aFiles.filter((f) => statusOf(s.db, f) === 'pending')).toHaveLength(3);
    expect(startsOf(s, 'recorder').map((r) => r.file).sort()).toEqual([...bFiles].sort());

    fs.writeFileSync(s.gate, '');
    await waitFor(() => aFiles.every((f) => statusOf(s.db, f) === 'completed'), { timeoutMs: 30_000, message: "feed A's files completed" });
    expect(startsOf(s, 'gate')).toHaveLength(4);
  });

  it("a route's retry policy and onDead apply to its files; the other feed keeps the top-level ones", async () => {
    const s = feeds({ retry: { maxRetries: 0 }, onDead: { moveTo: 'dead-a' } }, { retry: { maxRetries: 2, baseDelayMs: 20, maxDelayMs: 50 } });
    fs.mkdirSync(path.join(s.dir, 'dead-a'));
    fs.writeFileSync(s.gate, '');
    const a = drop(s.a, 'bad.csv', 'fail\n');
    const b = drop(s.b, 'bad.csv', 'fail\n');
    const r = await cli(['run', '--once', '--config', s.config], { cwd: s.dir, env: { RECORD_LOG: s.recordLog } });
    expect(r.code, r.stderr).toBe(1); // dead files
    const row = (f: string) => rows(s.db).find((x) => x.file_url === f)!;
    // A: its route's handler, no retries, moved to its dead folder.
    expect(row(a)).toMatchObject({ status: 'dead', attempts: 1, file_type: 'a' });
    expect(startsOf(s, 'gate').map((x) => x.file)).toEqual([a]);
    expect(fs.existsSync(a)).toBe(false);
    expect(fs.existsSync(path.join(s.dir, 'dead-a', 'bad.csv'))).toBe(true);
    // B: the top-level handler, 2 retries, kept where it was.
    expect(row(b)).toMatchObject({ status: 'dead', attempts: 3, file_type: 'b' });
    expect(startsOf(s, 'recorder').map((x) => x.file)).toEqual([b, b, b]);
    expect(fs.existsSync(b)).toBe(true);
  });

  it('a route cap above the total, or a route handler that cannot run: exit 78, one line naming the key', async () => {
    const s1 = feeds({ concurrency: 3 }, { concurrency: 2 });
    const r1 = await cli(['run', '--config', s1.config], { cwd: s1.dir });
    expect(r1.code).toBe(78);
    expect(r1.stderr.trim().split('\n')).toHaveLength(1);
    expect(r1.stderr).toMatch(/ckpt\.config\.json: watch\[0\]\.concurrency: expected at most the top-level concurrency \(2/);

    const s2 = feeds({ handler: { command: ['no-such-loader-xyz', '{path}'] } });
    const d = startDaemon(s2);
    expect((await d.exited).code).toBe(78);
    const fatal = d.lines.filter((l) => l.level === 'fatal');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ key: 'watch[0].handler.command[0]' });
    expect(fatal[0]!.msg).toMatch(/ckpt\.config\.json: watch\[0\]\.handler\.command\[0\]: cannot run "no-such-loader-xyz": not found in PATH/);
    expect(d.lines.some((l) => l.msg === 'ckpt running')).toBe(false);
  });
});
