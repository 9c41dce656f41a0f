/**
 * `ckpt run` against PostgreSQL: two daemons (posing as two hosts by worker id) on one database
 * and one folder, files handled once, with the password never in any output.
 */
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { drop, killDaemons, records, setup, startDaemon, started } from '../helpers/daemon.js';
import { PG_PASSWORD, freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cluster = await pgClusterForTests('daemon on postgres');
afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});
afterAll(async () => {
  await cluster?.destroy();
});

describe.skipIf(!cluster)('ckpt run on PostgreSQL', () => {
  it('two daemons share one database: every file handled once, the password never printed', async () => {
    const schema = freshSchema('daemon');
    const s = setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema } });
    const env = { CKPT_TEST_PG_URL: cluster!.url() };
    const a = startDaemon(s, ['--worker-id', 'host-a:1'], env);
    const b = startDaemon(s, ['--worker-id', 'host-b:2'], env);
    await Promise.all([started(a), started(b)]);
    const N = 20;
    for (let i = 0; i < N; i++) drop(s.inbox, `p${i}.csv`, `row ${i}\n`);
    const count = async () =>
      Number((await cluster!.sql(`SELECT count(*) AS n FROM "${schema}".file_checkpoints WHERE status = 'completed'`)).rows[0].n);
    await waitFor(async () => (await count()) === N, { timeoutMs: 30_000 });
    const starts = records(s).filter((r) => r.ev === 'start');
    expect(starts).toHaveLength(N);
    expect(new Set(starts.map((r) => path.basename(r.file))).size).toBe(N);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);
    const out = JSON.stringify(a.lines) + JSON.stringify(b.lines) + a.stderr() + b.stderr();
    expect(out).not.toContain(PG_PASSWORD);
  });
});
