/**
 * Folder ownership on PostgreSQL: two daemons on one schema share a folder (the multi-host
 * set-up, see daemon-postgres.test.ts), a daemon on another schema of the same server is a
 * second ledger and is refused with one line naming both. And `ckpt doctor`'s dead-file count,
 * which reads the schema.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';
import { cli, drop, killDaemons, setup, startDaemon, started } from '../helpers/daemon.js';
import { PG_PASSWORD, freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cluster = await pgClusterForTests('folder ownership on postgres');
afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});
afterAll(async () => {
  await cluster?.destroy();
});

describe.skipIf(!cluster)('folder ownership on PostgreSQL', () => {
  it('a daemon on another schema is refused (exit 78) naming both ledgers; one on the same schema is not', async () => {
    const mine = freshSchema('own');
    const s = setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema: mine }, fallbackDir: 'fallback' });
    const env = { CKPT_TEST_PG_URL: cluster!.url() };
    const a = startDaemon(s, ['--worker-id', 'host-a:1'], env);
    await started(a);
    const marker = JSON.parse(fs.readFileSync(path.join(s.inbox, LEDGER_MARKER), 'utf8')) as { id: string; describe: string };
    expect(marker.id).toMatch(new RegExp(`^postgres:[^/]+/${mine}/\\d+$`));

    const same = startDaemon(s, ['--worker-id', 'host-b:2'], env);
    await started(same);

    const theirs = freshSchema('other');
    const cfg = JSON.parse(fs.readFileSync(s.config, 'utf8')) as Record<string, unknown>;
    const other = path.join(s.dir, 'other.config.json');
    fs.writeFileSync(other, JSON.stringify({ ...cfg, database: { urlEnv: 'CKPT_TEST_PG_URL', schema: theirs }, fallbackDir: 'fallback-other' }));
    const b = startDaemon({ ...s, config: other }, ['--worker-id', 'host-c:3'], env);
    expect((await b.exited).code).toBe(78);
    const fatal = b.lines.filter((l) => l.level === 'fatal').map((l) => String(l.msg));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(new RegExp(`watch\\[0\\]\\.dir: folder .* belongs to another ledger, PostgreSQL .*, schema ${mine} \\(created .*\\).*this one is PostgreSQL .*, schema ${theirs} \\(created`));
    expect(fatal[0]).not.toContain(PG_PASSWORD);
  });

  it('ckpt doctor counts the dead files in the schema (a warn line with the commands)', async () => {
    const schema = freshSchema('dead');
    const s = setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema }, fallbackDir: 'fallback' });
    const env = { CKPT_TEST_PG_URL: cluster!.url() };
    const d = startDaemon(s, [], env);
    await started(d);
    drop(s.inbox, 'bad.csv', 'permanent\n');
    await waitFor(async () => Number((await cluster!.sql(`SELECT count(*) AS n FROM "${schema}".file_checkpoints WHERE status = 'dead'`)).rows[0].n) === 1, { message: 'bad.csv dead' });
    const doc = await cli(['doctor', '--config', s.config], { env });
    expect(doc.stdout).toMatch(/^warn +dead files +1 file\(s\) used up their retries or failed permanently: see them with `ckpt list --status dead --config /m);
    expect(doc.stdout.trimEnd().split('\n').at(-1)).toBe('dead files wait for a person: see the "dead files" line above');
  });
});
