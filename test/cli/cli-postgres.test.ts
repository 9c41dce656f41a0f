/**
 * The `ckpt` command line against a real PostgreSQL server: the same commands and JSON as on
 * SQLite, the URL taken from the environment and never printed, a schema where ckpt never ran
 * refused (not created), and this host's path prefixes applied to what is printed and typed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PathMap } from '../../src/store/path-map.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { PG_PASSWORD, freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { ckpt, killAll, type CliRun } from './cli-helper.js';
import { SEED_RETRY, WORKER, makeWorkspace, seedInto, type Workspace } from './workspace.js';

const cluster = await pgClusterForTests('cli on postgres');
const URL_ENV = 'CKPT_TEST_PG_URL';
const outputs: string[] = [];

afterEach(() => killAll());
afterAll(async () => {
  cleanupTmpDirs();
  await cluster?.destroy();
});

/** A workspace whose ledger is a fresh schema, seeded like the SQLite CLI tests; the share is "/share". */
async function seeded(): Promise<Workspace & { schema: string }> {
  const schema = freshSchema('cli');
  // "." is the config file's folder: this host sees the share there, the ledger says /share.
  const ws = makeWorkspace({ database: { urlEnv: URL_ENV, schema }, pathPrefixes: [{ local: '.', shared: '/share' }] });
  const map = new PathMap([{ local: ws.dir, shared: '/share' }]);
  const store = await PostgresStore.connect({ url: cluster!.url(), schema, retry: SEED_RETRY });
  try {
    await seedInto(store, ws, Date.now(), (p) => map.toShared(p));
  } finally {
    await store.close();
  }
  return { ...ws, schema };
}

async function run(ws: Workspace, args: string[], url = cluster!.url()): Promise<CliRun> {
  const r = await ckpt(['--config', ws.config, ...args], { cwd: ws.dir, env: { [URL_ENV]: url } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

describe.skipIf(!cluster)('ckpt CLI on PostgreSQL', () => {
  let ws: Workspace & { schema: string };
  beforeAll(async () => {
    ws = await seeded();
  });
  afterAll(() => {
    // Not in any output of any command of this file, however it ended.
    for (const o of outputs) expect(o).not.toContain(PG_PASSWORD);
  });

  it('status: counts, recent outcomes and workers; the database named without the URL', async () => {
    const r = await run(ws, ['status', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = r.json<{ database: unknown; counts: Record<string, number>; total: number; lastMinute: { completed: number; failed: number }; workers: { workerId: string; state: string }[] }>();
    expect(doc.database).toBeNull();
    expect(doc.counts).toEqual({ pending: 2, processing: 1, completed: 3, failed: 1, dead: 1 });
    expect(doc.total).toBe(8);
    expect(doc.lastMinute).toEqual({ completed: 3, failed: 3 });
    expect(doc.workers).toEqual([expect.objectContaining({ workerId: WORKER, state: 'live' })]);

    const human = await run(ws, ['status']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^mode +normal$/m);
    expect(human.stdout).toMatch(new RegExp(`^database  postgres 127\\.0\\.0\\.1:${cluster!.port}/postgres, schema ${ws.schema}$`, 'm'));
  });

  it('top: one snapshot without a terminal, as a JSON line and as text, in this host\'s paths', async () => {
    const r = await run(ws, ['top', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<{
      database: unknown;
      counts: Record<string, number>;
      rates: { windowMs: number; completed: number; failed: number }[];
      backlog: { folder: string; fileType: string; pending: number; retrying: number }[];
      inFlight: { fileUrl: string; workerId: string; attempt: number }[];
      failures: { fileUrl: string; attempt: number; summary: string }[];
    }>();
    expect(doc.database).toBeNull();
    expect(doc.counts).toEqual({ pending: 2, processing: 1, completed: 3, failed: 1, dead: 1 });
    expect(doc.rates[1]).toMatchObject({ windowMs: 60_000, completed: 3, failed: 3 });
    expect(doc.backlog.map((g) => [g.folder, g.fileType, g.pending, g.retrying])).toEqual([
      [ws.inbox, 'csv', 1, 1],
      [ws.inbox, 'json', 1, 0],
    ]);
    expect(doc.inFlight).toEqual([expect.objectContaining({ fileUrl: ws.file('slow.csv'), workerId: WORKER, attempt: 1 })]);
    expect(doc.failures.map((f) => [f.fileUrl, f.attempt, f.summary])).toEqual([
      [ws.file('flaky.csv'), 1, 'timeout after 5000 ms'],
      [ws.file('bad.csv'), 2, 'exit code 65: line 3: expected 2 columns, got 3'],
      [ws.file('bad.csv'), 1, 'exit code 1: connection refused'],
    ]);

    const human = await run(ws, ['top']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^ckpt top  \\d\\d:\\d\\d:\\d\\d UTC  postgres 127\\.0\\.0\\.1:${cluster!.port}/postgres, schema ${ws.schema}$`, 'm'));
    expect(human.stdout).toMatch(new RegExp(`\\s1\\s+${WORKER}\\s+${ws.file('slow.csv')}$`, 'm'));
  });

  it('list and show speak this host\'s paths; the shared name is accepted too', async () => {
    const list = await run(ws, ['list', '--json', '--limit', '0']);
    expect(list.code).toBe(0);
    const files = list.json<{ files: { file: string; status: string }[] }>().files;
    expect(files).toHaveLength(8);
    for (const f of files) expect(f.file.startsWith(`${ws.inbox}/`)).toBe(true);

    const dead = await run(ws, ['list', '--status', 'dead']);
    expect(dead.stdout).toContain(ws.file('bad.csv'));
    expect(dead.stdout).not.toContain('/share/');

    const show = await run(ws, ['show', 'inbox/bad.csv', '--json']);
    expect(show.code).toBe(0);
    const doc = show.json<{ file: { file: string; status: string }; attempts: { outcome: string }[] }>();
    expect(doc.file).toMatchObject({ file: ws.file('bad.csv'), status: 'dead' });
    expect(doc.attempts.map((a) => a.outcome)).toEqual(['failed', 'dead']);

    const byShared = await run(ws, ['show', '/share/inbox/bad.csv', '--json']);
    expect(byShared.json<{ file: { file: string } }>().file.file).toBe(ws.file('bad.csv'));

    const missing = await run(ws, ['show', 'inbox/nope.csv']);
    expect(missing.code).toBe(65);
  });

  it('retry and purge change the shared rows', async () => {
    const w = await seeded();
    const retry = await run(w, ['retry', 'inbox/bad.csv', '--json']);
    expect(retry.code).toBe(0);
    expect(retry.json<{ requeued: number; refused: unknown[] }>()).toMatchObject({ requeued: 1, refused: [] });
    const row = await cluster!.sql(`SELECT status, retry_count FROM "${w.schema}".file_checkpoints WHERE file_url = '/share/inbox/bad.csv'`);
    expect(row.rows).toEqual([{ status: 'pending', retry_count: 0 }]);

    const purge = await run(w, ['purge', '--older-than', '1ms', '--json']);
    expect(purge.code).toBe(0);
    expect(purge.json<{ purged: number }>().purged).toBe(3);
    const tombs = await cluster!.sql(`SELECT file_url FROM "${w.schema}".file_tombstones ORDER BY file_url`);
    expect(tombs.rows.map((r) => r.file_url)).toEqual(['/share/inbox/a.csv', '/share/inbox/b.csv', '/share/inbox/c.csv']);
  });

  it('a schema where ckpt never ran: exit 69, and nothing is created there', async () => {
    const schema = freshSchema('never');
    const w = makeWorkspace({ database: { urlEnv: URL_ENV, schema } });
    const r = await run(w, ['status']);
    expect(r.code).toBe(69);
    expect(r.stderr).toBe(`ckpt: no ckpt ledger in schema ${schema} of postgres 127.0.0.1:${cluster!.port}/postgres: nothing has run with this configuration yet (start \`ckpt run\`), or "schema" names another one\n`);
    const ns = await cluster!.sql('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    expect(ns.rowCount).toBe(0);
  });

  it('a wrong password: exit 69 with one line that holds neither password', async () => {
    const wrong = 'not-the-password-91c2';
    const r = await run(ws, ['list'], cluster!.url('postgres', { password: wrong }));
    expect(r.code).toBe(69);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ckpt: cannot use the PostgreSQL database: .*postgres 127\.0\.0\.1:\d+\/postgres/);
    expect(r.stderr).not.toContain(wrong);
  });

  it('doctor: server, schema, leases and workers; a refused login is a FAIL (69)', async () => {
    const ok = await run(ws, ['doctor', '--json']);
    expect(ok.code).toBe(0);
    const doc = ok.json<{ checks: { name: string; level: string; message: string }[]; needsPerson: boolean }>();
    expect(doc.needsPerson).toBe(false);
    expect(doc.checks.map((c) => [c.name, c.level])).toEqual([
      ['server', 'ok'],
      ['schema', 'ok'],
      // The suite's clusters run with synchronous_commit and fsync off (for speed).
      ['durability', 'warn'],
      ['leases', 'ok'],
      // Two files went dead earlier in this file's tests.
      ['dead files', 'warn'],
      ['workers', 'ok'],
      ['handler', 'ok'],
    ]);
    expect(doc.checks[0]!.message).toMatch(/^postgres 127\.0\.0\.1:\d+\/postgres, PostgreSQL \d+/);

    // A claim whose lease ran out an hour ago, and a worker that went quiet: worth knowing, no FAIL.
    await cluster!.sql(`UPDATE "${ws.schema}".file_checkpoints SET due_at = now() - interval '1 hour' WHERE status = 'processing'`);
    await cluster!.sql(`UPDATE "${ws.schema}".ckpt_workers SET heartbeat_at = now() - interval '1 hour'`);
    const warn = await run(ws, ['doctor']);
    expect(warn.code).toBe(0);
    expect(warn.stdout).toMatch(/^warn +leases +1 claim\(s\) whose lease ran out/m);
    expect(warn.stdout).toMatch(/^warn +workers +1 without a heartbeat/m);

    const refused = await run(ws, ['doctor'], cluster!.url('postgres', { password: 'wrong-pw-5d1e' }));
    expect(refused.code).toBe(69);
    expect(refused.stdout).toMatch(/^FAIL +server +postgres 127\.0\.0\.1:\d+\/postgres: the server refuses ckpt: .*28P01/m);
    expect(refused.stdout).not.toContain('wrong-pw-5d1e');
  });
});
