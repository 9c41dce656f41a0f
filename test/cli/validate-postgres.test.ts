/**
 * `ckpt validate` against a real PostgreSQL server: a schema where ckpt never ran is fine (ckpt
 * run creates it) and is not created by validate; a migrated one shows its version; a refused
 * login fails without echoing the URL.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ValidateJson } from '../../src/cli/commands/validate.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { ckpt, killAll } from './cli-helper.js';
import { SEED_RETRY, makeWorkspace } from './workspace.js';

const cluster = await pgClusterForTests('validate on postgres');
const URL_ENV = 'CKPT_TEST_PG_URL';

afterEach(() => killAll());
afterAll(async () => {
  cleanupTmpDirs();
  await cluster?.destroy();
});

async function validate(schema: string, url = cluster!.url()): Promise<{ code: number | null; json: ValidateJson; stdout: string }> {
  const ws = makeWorkspace({ database: { urlEnv: URL_ENV, schema } });
  const r = await ckpt(['validate', '--config', ws.config, '--json'], { cwd: ws.dir, env: { [URL_ENV]: url } });
  return { code: r.code, json: r.json<ValidateJson>(), stdout: r.stdout };
}

describe.skipIf(cluster === null)('ckpt validate on PostgreSQL', () => {
  it('a schema where ckpt never ran: ok, and validate does not create it', async () => {
    const schema = freshSchema('val');
    const r = await validate(schema);
    expect(r.code, r.stdout).toBe(0);
    const schemaCheck = r.json.checks.find((c) => c.name === 'schema');
    expect(schemaCheck?.level).toBe('ok');
    expect(schemaCheck?.message).toMatch(new RegExp(`^no ckpt ledger in postgres 127\\.0\\.0\\.1:\\d+/postgres, schema ${schema} yet: ckpt run creates it`));
    const store = new PostgresStore({ url: cluster!.url(), schema, retry: SEED_RETRY, maxConnections: 1 });
    try {
      expect(await store.schemaVersion()).toBeNull();
    } finally {
      await store.close();
    }
  });

  it('a migrated schema: its version; a refused login: FAIL, exit 78, no password printed', async () => {
    const schema = freshSchema('val');
    const store = await PostgresStore.connect({ url: cluster!.url(), schema, retry: SEED_RETRY });
    await store.close();
    const ok = await validate(schema);
    expect(ok.code).toBe(0);
    expect(ok.json.checks.find((c) => c.name === 'schema')?.message).toMatch(/schema version \d+ \(current\)$/);

    const refused = await validate(schema, cluster!.url('postgres', { password: 'wrong-pw-5d1e' }));
    expect(refused.code).toBe(78);
    const db = refused.json.checks.find((c) => c.name === 'database');
    expect(db?.level).toBe('fail');
    expect(db?.message).toMatch(/^cannot use the PostgreSQL database: /);
    expect(refused.stdout).not.toContain('wrong-pw-5d1e');
  });
});
