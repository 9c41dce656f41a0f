/**
 * On PostgreSQL ckpt counts on a returned COMMIT being on the server's disk before it moves or
 * deletes the file. `ckpt doctor` says so when ckpt's session would not get that: with
 * `synchronous_commit = off` for its role, a server crash can take back outcomes whose files
 * are gone. Real throwaway cluster (test/helpers/postgres.ts).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { ckpt, killAll } from '../cli/cli-helper.js';
import { makeWorkspace } from '../cli/workspace.js';
import { PG_USER, freshSchema, startPgCluster } from '../helpers/postgres.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';

// A cluster with PostgreSQL's crash safety kept (the suite's clusters turn it off for speed).
const started = await startPgCluster({ durable: true });
if (typeof started === 'string' && process.env.CI === 'true') throw new Error(`PostgreSQL tests cannot run in CI: ${started}`);
const cluster = typeof started === 'string' ? null : started;
const URL_ENV = 'CKPT_TEST_PG_URL';

afterEach(() => killAll());
afterAll(async () => {
  cleanupTmpDirs();
  await cluster?.destroy();
});

describe.skipIf(!cluster)('ckpt doctor on PostgreSQL: durable commits', () => {
  it('warns when synchronous_commit is off for ckpt\'s role, and says nothing when it is on', async () => {
    const schema = freshSchema('dur');
    const ws = makeWorkspace({ database: { urlEnv: URL_ENV, schema } });
    await (await PostgresStore.connect({ url: cluster!.url(), schema })).close();
    const doctor = () => ckpt(['--config', ws.config, 'doctor', '--json'], { cwd: ws.dir, env: { [URL_ENV]: cluster!.url() } });
    type Doc = { checks: { name: string; level: string; message: string }[] };

    const on = await doctor();
    expect(on.code, on.stderr).toBe(0);
    expect(on.json<Doc>().checks.filter((c) => c.name === 'durability')).toEqual([]);

    await cluster!.sql(`ALTER ROLE ${PG_USER} SET synchronous_commit = off`);
    const off = await doctor();
    expect(off.code, off.stderr).toBe(0);
    expect(off.json<Doc>().checks.filter((c) => c.name === 'durability')).toEqual([
      { name: 'durability', level: 'warn', message: expect.stringMatching(/^synchronous_commit is off for ckpt's session: a server crash can take back committed outcomes/) },
    ]);
  });
});
