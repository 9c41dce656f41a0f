/**
 * The "Inspect with sqlite3" queries of docs/sqlite3.md, run through the real sqlite3 shell against a
 * database that a real `ckpt run` wrote; and the promise next to them: reading from the shell,
 * even inside an open transaction, never blocks the daemons.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { cliEntry, killAll } from './cli-helper.js';
import { extractInspectQueries, loadInspectQueries } from './inspect-queries.js';
import { ShellSession, csvRows, hasSqlite3, killShells, query } from './sqlite3-shell.js';
import { makeWorkspace, seedStore } from './workspace.js';

const daemons = new Set<ChildProcess>();

afterEach(() => {
  for (const d of daemons) d.kill('SIGKILL');
  daemons.clear();
  killShells();
  killAll();
  cleanupTmpDirs();
});

const HANDLER = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures', 'outcome-handler.mjs');

describe.skipIf(!hasSqlite3())('Inspect with sqlite3', () => {
  it('docs/sqlite3.md holds exactly five queries', () => {
    const { source, queries } = loadInspectQueries();
    expect(queries.map((q) => q.title), source).toHaveLength(5);
    for (const q of queries) expect(q.sql).toMatch(/^SELECT /);
  });

  it('extracts only the ```sql blocks of that section', () => {
    const md = ['# x', '```sql', 'SELECT 0;', '```', '## Inspect with sqlite3', 'one:', '```sql', 'SELECT 1;', '```', '```sh', 'ls', '```', '### sub', '```sql', 'SELECT 2;', '```', '## Next', '```sql', 'SELECT 3;', '```'].join('\n');
    expect(extractInspectQueries(md)).toEqual([
      { title: 'one:', sql: 'SELECT 1;' },
      { title: 'sub', sql: 'SELECT 2;' },
    ]);
    expect(extractInspectQueries('# nothing here')).toBeNull();
  });

  it("runs each docs/sqlite3.md query against a running daemon's database, while a shell holds a read transaction", async () => {
    const ws = makeWorkspace({
      handler: { command: [process.execPath, HANDLER, '{path}'] },
      stableMs: 100,
      concurrency: 2,
      retry: { maxRetries: 1, baseDelayMs: 50, maxDelayMs: 100 },
    });
    const daemon = spawn(process.execPath, [...cliEntry(), 'run', '--log-format', 'json'], { cwd: ws.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    daemons.add(daemon);
    let log = '';
    daemon.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => daemon.once('close', (code) => r(code)));
    await waitFor(() => fs.existsSync(ws.db) && log.includes('ckpt running'), { message: 'daemon start' });

    // A reader in an open transaction, before any file arrives.
    const shell = new ShellSession(ws.db);
    expect(await shell.send('BEGIN; SELECT count(*) FROM v_attempts;')).toBe('0');

    for (let i = 1; i <= 6; i++) fs.writeFileSync(ws.file(`ok-${i}.csv`), 'id,v\n1,a\n2,b\n');
    fs.writeFileSync(ws.file('broken.csv'), 'id,v\nBAD\n');
    fs.writeFileSync(ws.file('flaky.csv'), 'id,v\nFLAKY\n');

    const reader = new Database(ws.db, { readonly: true });
    try {
      await waitFor(
        () => {
          const r = reader.prepare("SELECT sum(status = 'completed') AS c, sum(status = 'dead') AS d FROM file_checkpoints").get() as { c: number | null; d: number | null };
          return r.c === 6 && r.d === 2;
        },
        { timeoutMs: 45_000, message: `all eight settled; daemon log:\n${log}` },
      );
    } finally {
      reader.close();
    }
    // The shell still sees its snapshot from before the files; the daemon was not held up by it.
    expect(await shell.send('SELECT count(*) FROM file_checkpoints;')).toBe('0');
    expect(await shell.send('COMMIT; SELECT count(*) FROM file_checkpoints;')).toBe('8');
    expect(await shell.quit()).toBe(0);

    const { queries } = loadInspectQueries();
    const results: { sql: string; rows: string[][] }[] = [];
    for (const q of queries) {
      const r = await query(ws.db, q.sql);
      expect(r.stderr, q.sql).toBe('');
      expect(r.code, q.sql).toBe(0);
      const rows = csvRows(r.stdout);
      expect(rows.length, `${q.title}\n${q.sql}\n${r.stdout}`).toBeGreaterThan(1);
      results.push({ sql: q.sql, rows });
    }
    const bySql = (needle: string) => results.find((r) => r.sql.includes(needle))!.rows;
    const status = Object.fromEntries(bySql('v_status').slice(1).map((r) => [r[0], r[1]]));
    expect(status).toEqual({ pending: '0', processing: '0', completed: '6', failed: '0', dead: '2' });
    expect(bySql('FROM v_failures LIMIT').slice(1).map((r) => r[0])).toEqual(['dead', 'dead']);
    expect(bySql('FROM v_workers').slice(1)).toHaveLength(1);
    expect(bySql('FROM v_workers')[1]![1]).toBe('normal');
    // The box mode the README shows works in this older shell too.
    expect((await query(ws.db, queries[0]!.sql, '-box')).stdout).toContain('│ completed  │ 6');

    daemon.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('an open read transaction and a long query in the shell never make a store write wait', async () => {
    const ws = makeWorkspace();
    await seedStore(ws);
    const shell = new ShellSession(ws.db);
    expect(await shell.send('BEGIN; SELECT files FROM v_status WHERE status = \'completed\';')).toBe('3');
    // About a second of work in the older shell, over a view, holding its own snapshot.
    const long = query(ws.db, 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) FROM c, v_status;');
    let longDone = false;
    void long.then(() => (longDone = true));

    // No busy wait and no retry: any write that had to wait for a reader would throw at once.
    const store = new SqliteStore(ws.db, { busyTimeoutMs: 0, lockTimeoutMs: 0 });
    let cycles = 0;
    try {
      while (!longDone || cycles < 50) {
        const now = Date.now();
        const url = path.join(ws.inbox, `w-${cycles}.csv`);
        await store.discover([{ fileUrl: url, fileType: 'csv', mtimeMs: now, size: 1, fingerprint: `f${cycles}` }], now);
        const claim = await store.claimFile(url, { workerId: `${os.hostname()}:1`, leaseMs: 30_000, now });
        expect(claim).not.toBeNull();
        expect(await store.complete([{ fileUrl: url, token: claim!.token, now, stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 } }])).toEqual(['ok']);
        cycles++;
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      await store.close();
    }
    const r = await long;
    expect(r.code, r.stderr).toBe(0);
    expect(Number(csvRows(r.stdout)[1]![0])).toBe(2_000_000 * 5);
    // Snapshot isolation: the open transaction still counts 3.
    expect(await shell.send("SELECT files FROM v_status WHERE status = 'completed';")).toBe('3');
    expect(await shell.send("COMMIT; SELECT files FROM v_status WHERE status = 'completed';")).toBe(String(3 + cycles));
    expect(await shell.quit()).toBe(0);
  });

  it('-readonly turns a slip at the prompt into an error instead of a lock', async () => {
    const ws = makeWorkspace();
    await seedStore(ws);
    const r = await query(ws.db, "UPDATE file_checkpoints SET status = 'pending';");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/readonly database/);
  });
});
