/**
 * `ckpt top` on PostgreSQL: one refresh (activity()) reads one snapshot. A file committed while
 * the refresh is half done (held up here by a lock on file_attempts, taken and released by
 * another session that inserts the file in the same transaction) is in none of its numbers, so
 * the rates, the backlog and the lists agree with each other.
 */
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const cluster = await pgClusterForTests('postgres activity snapshot');
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) await o.close().catch(() => undefined);
});
afterAll(async () => {
  await cluster?.destroy();
});

describe.skipIf(cluster === null)('activity on PostgreSQL', () => {
  it('is one snapshot: a file committed during a refresh is not half in it', async () => {
    const schema = freshSchema('activity');
    const store = await PostgresStore.connect({ url: cluster!.url(), schema, maxConnections: 2 });
    open.push(store);
    await store.discover([{ fileUrl: '/shared/a.csv', fileType: 'csv', mtimeMs: T0 - 1_000, size: 10, fingerprint: 'fp1' }], T0);
    const other = new pg.Client({ connectionString: cluster!.url() });
    await other.connect();
    open.push({ close: () => other.end() });
    const watcher = new pg.Client({ connectionString: cluster!.url() });
    await watcher.connect();
    open.push({ close: () => watcher.end() });

    await other.query(`BEGIN; LOCK TABLE ${schema}.file_attempts IN ACCESS EXCLUSIVE MODE`);
    const refresh = store.activity({ now: T0 + 5_000, windowsMs: [10_000, 60_000], limit: 10 });
    // The refresh has read file_checkpoints (the discovered counts) and waits for the lock.
    await waitFor(async () => Number((await watcher.query(`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = '${schema}.file_attempts'::regclass`)).rows[0].n) > 0, { message: 'the refresh waiting on the lock' });
    await other.query(
      `INSERT INTO ${schema}.file_checkpoints (file_url, file_type, file_timestamp, status, fingerprint, due_at, created_at, updated_at)
       VALUES ('/shared/b.csv', 'csv', $1, 'pending', 'fp1', $1, $1, $1)`,
      [new Date(T0 + 1_000).toISOString()],
    );
    await other.query('COMMIT');
    const act = await refresh;
    expect(act.windows.map((w) => w.discovered)).toEqual([1, 1]);
    expect(act.stats.counts.pending).toBe(1);
    // Read after the commit, but in the refresh's snapshot: still one pending file.
    expect(act.backlog).toEqual([expect.objectContaining({ folder: '/shared', pending: 1 })]);
    // The next refresh sees both.
    const next = await store.activity({ now: T0 + 5_000, windowsMs: [10_000], limit: 10 });
    expect(next.backlog).toEqual([expect.objectContaining({ pending: 2 })]);
    expect(next.windows[0]!.discovered).toBe(2);
  });
});
