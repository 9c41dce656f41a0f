/**
 * `ckpt run` against PostgreSQL: two daemons (posing as two hosts by worker id) on one database
 * and one folder, files handled once, with the password never in any output.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { idempotencyKey } from '../../src/store/idempotency.js';
import { drop, killDaemons, records, setup, startDaemon, started } from '../helpers/daemon.js';
import { PG_PASSWORD, freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';

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
    const s = setup({ database: { urlEnv: 'CKPT_TEST_PG_URL', schema }, fallbackDir: 'fallback' });
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

  it('two hosts that mount the share at different paths: one row per file under the shared name, each handled once', async () => {
    // One folder reached by two paths, as two hosts would reach one NFS share: host A at
    // <tmp>/mnt-a/share, host B at <tmp>/srv/share, where <tmp>/srv is a symlink to <tmp>/mnt-a.
    const base = tmpDir('ckpt-two-roots-');
    const rootA = path.join(base, 'mnt-a', 'share');
    const rootB = path.join(base, 'srv', 'share');
    fs.mkdirSync(path.join(rootA, 'inbox'), { recursive: true });
    fs.mkdirSync(path.join(rootA, 'done'));
    fs.symlinkSync(path.join(base, 'mnt-a'), path.join(base, 'srv'));
    const schema = freshSchema('roots');
    const hostConfig = (root: string) => ({
      database: { urlEnv: 'CKPT_TEST_PG_URL', schema },
      // Each host its own local folder for degraded-mode journals and markers.
      fallbackDir: path.join(base, root === rootA ? 'fallback-a' : 'fallback-b'),
      watch: [{ dir: path.join(root, 'inbox'), fileType: 'csv' }],
      onSuccess: { moveTo: path.join(root, 'done') },
      pathPrefixes: [{ local: root, shared: '/share' }],
    });
    const a = setup(hostConfig(rootA));
    const configB = path.join(a.dir, 'host-b.config.json');
    const cfgA = JSON.parse(fs.readFileSync(a.config, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(configB, JSON.stringify({ ...cfgA, ...hostConfig(rootB) }, null, 2));
    const env = { CKPT_TEST_PG_URL: cluster!.url() };
    const da = startDaemon(a, ['--worker-id', 'host-a:1'], env);
    const db = startDaemon({ ...a, config: configB }, ['--worker-id', 'host-b:2'], env);
    await Promise.all([started(da), started(db)]);

    const N = 30;
    // 100 ms each, so that both hosts get a share of the work.
    for (let i = 0; i < N; i++) drop(path.join(rootA, 'inbox'), `p${i}.csv`, 'sleep 100\n');
    const rows = async () => (await cluster!.sql(`SELECT file_url, status FROM "${schema}".file_checkpoints ORDER BY file_url`)).rows as { file_url: string; status: string }[];
    await waitFor(async () => (await rows()).filter((r) => r.status === 'completed').length === N, { timeoutMs: 60_000 });
    // Both hosts discovered every file (their rescans see all of them): still one row each.
    const expected = Array.from({ length: N }, (_, i) => `/share/inbox/p${i}.csv`).sort();
    expect((await rows()).map((r) => r.file_url)).toEqual(expected);
    // After-actions ran on the local paths: everything moved to done/ (the same folder for both).
    await waitFor(() => fs.readdirSync(path.join(rootA, 'done')).length === N, { timeoutMs: 20_000 });
    expect(fs.readdirSync(path.join(rootA, 'inbox')).filter((n) => n !== LEDGER_MARKER)).toEqual([]);

    const starts = records(a).filter((r) => r.ev === 'start');
    expect(starts).toHaveLength(N);
    expect(new Set(starts.map((r) => path.basename(r.file))).size).toBe(N);
    // Each host's handler got its own path, and the idempotency key of the shared name.
    for (const r of starts) {
      const root = r.worker === 'host-a:1' ? rootA : rootB;
      expect(path.dirname(r.file)).toBe(path.join(root, 'inbox'));
      expect(r.key).toBe(idempotencyKey(`/share/inbox/${path.basename(r.file)}`, 1));
    }
    expect(new Set(starts.map((r) => r.worker))).toEqual(new Set(['host-a:1', 'host-b:2']));

    da.child.kill('SIGTERM');
    db.child.kill('SIGTERM');
    expect((await da.exited).code).toBe(0);
    expect((await db.exited).code).toBe(0);
  });
});
