/**
 * PostgreSQL migration 2 (the psql views): every `psql` line of docs/postgresql.md
 * runs through the real psql against a ledger written by the store, and the views show what
 * the store wrote (the same rows as the SQLite views).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { pgClusterForTests } from '../helpers/postgres.js';
import { REPO, run } from '../helpers/spawn.js';

const cluster = await pgClusterForTests('postgres views');
afterAll(async () => {
  await cluster?.destroy();
});

/** The SQL of each `psql "$CKPT_PG_URL" -c "..."` line of docs/postgresql.md. */
function readmePsqlQueries(): string[] {
  const section = fs.readFileSync(path.join(REPO, 'docs', 'postgresql.md'), 'utf8');
  return section
    .split('\n')
    .filter((l) => l.startsWith('psql "$CKPT_PG_URL" -c "'))
    .map((l) => l.slice('psql "$CKPT_PG_URL" -c "'.length, l.lastIndexOf('"')));
}

function psqlBinary(): string {
  const beside = path.join(cluster!.binDir, 'psql');
  return fs.existsSync(beside) ? beside : 'psql';
}

describe.skipIf(!cluster)('psql views', () => {
  it('every psql line of docs/postgresql.md runs, and the views show what the store wrote', async () => {
    // The examples use the schema "ckpt"; this cluster belongs to this test file alone.
    const store = await PostgresStore.connect({ url: cluster!.url(), schema: 'ckpt', retry: { maxRetries: 3, baseDelayMs: 60_000, maxDelayMs: 60_000 } });
    try {
      const now = Date.now();
      const file = (name: string) => ({ fileUrl: `/share/inbox/${name}`, fileType: 'csv', mtimeMs: now - 5000, size: 10, fingerprint: `fp-${name}` });
      await store.discover([file('x.csv'), file('y.csv'), file('z.csv'), file('w.csv')], now - 4000);
      const claims = await store.claim(3, { workerId: 'host-a:1', leaseMs: 60_000, now: now - 3000 });
      expect(claims).toHaveLength(3);
      const byName = new Map(claims.map((c) => [path.basename(c.fileUrl), c]));
      const x = byName.get('x.csv') ?? claims[0]!;
      const others = claims.filter((c) => c !== x);
      await store.complete([{ fileUrl: others[0]!.fileUrl, token: others[0]!.token, now: now - 2000, stats: { totalRows: 5, filteredRows: 0, persistedRows: 5, durationMs: 1000 } }]);
      await store.fail({ fileUrl: x.fileUrl, token: x.token, error: 'exit code 1; stderr:\nsink down\n', permanent: false, now: now - 1000, durationMs: 2000 });
      await store.touchWorker({ workerId: 'host-a:1', host: 'host-a', pid: 1, mode: 'normal', modeSince: null, modeReason: null }, now);

      const url = cluster!.url();
      const queries = readmePsqlQueries();
      expect(queries.length).toBeGreaterThanOrEqual(5);
      for (const q of queries) {
        const r = await run(psqlBinary(), ['-X', '-v', 'ON_ERROR_STOP=1', url, '-c', q], { env: { ...process.env, PGTZ: 'America/New_York' } });
        expect(r.stderr, q).toBe('');
        expect(r.code, q).toBe(0);
      }

      const status = (await cluster!.sql('SELECT * FROM ckpt.v_status')).rows;
      expect(status.map((r) => [r.status, Number(r.files)])).toEqual([
        ['pending', 1],
        ['processing', 1],
        ['completed', 1],
        ['failed', 1],
        ['dead', 0],
      ]);
      // UTC whatever the session's time zone, in the SQLite views' format.
      expect(status[2]!.oldest_since).toBe(new Date(now - 2000).toISOString().slice(0, 19).replace('T', ' '));
      expect(status[2]!.oldest_age).toMatch(/^\d+s$/);

      const failures = (await cluster!.sql('SELECT * FROM ckpt.v_failures')).rows;
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ status: 'failed', failures: 1, file_url: x.fileUrl, error: 'exit code 1; stderr: sink down' });
      expect(failures[0]!.next_try).not.toBeNull();

      const attempts = (await cluster!.sql('SELECT * FROM ckpt.v_attempts ORDER BY outcome, file_url')).rows;
      expect(attempts.map((r) => r.outcome)).toEqual(['completed', 'failed', 'running']);
      expect(attempts[0]!.duration_s).toBe('1.000');

      const throughput = (await cluster!.sql('SELECT * FROM ckpt.v_throughput')).rows;
      expect(throughput.reduce((n, r) => n + Number(r.completed), 0)).toBe(1);
      expect(throughput.reduce((n, r) => n + Number(r.failed), 0)).toBe(1);

      const queue = (await cluster!.sql('SELECT * FROM ckpt.v_queue')).rows;
      expect(queue.map((r) => r.status).sort()).toEqual(['failed', 'pending']);

      const workers = (await cluster!.sql('SELECT * FROM ckpt.v_workers')).rows;
      expect(workers).toEqual([expect.objectContaining({ worker_id: 'host-a:1', host: 'host-a', running: '1' })]);
    } finally {
      await store.close();
    }
  });
});
