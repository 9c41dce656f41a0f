/**
 * /metrics and /healthz over real HTTP on loopback, with counts from a real SQLite store and a
 * real -wal file.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type Health, type HttpServer, healthFromMode, startHttpServer } from '../../src/ops/http.js';
import { Metrics, failureLabel } from '../../src/ops/metrics.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Status } from '../../src/store/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

const servers: HttpServer[] = [];
const stores: SqliteStore[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const s of stores.splice(0)) await s.close();
  cleanupTmpDirs();
});

function quietLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }));
  return { logger, lines };
}

function get(port: number, urlPath: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line, e.g. sample(text, 'ckpt_files{status="pending"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function storeWithRows(): Promise<{ store: SqliteStore; db: string }> {
  const db = path.join(tmpDir(), 'ckpt.db');
  const store = new SqliteStore(db);
  stores.push(store);
  const now = Date.now();
  await store.discover(
    ['a', 'b', 'c'].map((n) => ({ fileUrl: `/in/${n}`, fileType: 't', mtimeMs: now, size: 1, fingerprint: n })),
    now,
  );
  const [c] = await store.claim(1, { workerId: 'w', leaseMs: 30_000, now });
  await store.complete([{ fileUrl: c!.fileUrl, token: c!.token, now, stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 5 } }]);
  return { store, db };
}

describe('Metrics', () => {
  it('exposes every series in Prometheus text format from a private registry', async () => {
    const { store, db } = await storeWithRows();
    const m = new Metrics({ counts: () => store.counts(), databasePath: db, processMetrics: false });
    m.claimed(3);
    m.completed(250);
    m.failed('timeout', 1_500);
    m.failed('lease_lost');
    m.failed('Error: something with spaces\nand a newline');
    m.leaseTakeovers(2);
    m.discoveryToClaim(40);
    m.setDegraded(true);
    const text = await m.text();
    const none = 'folder="other",file_type="other"';
    expect(sample(text, `ckpt_claims_total{${none}}`)).toBe(3);
    expect(sample(text, `ckpt_completions_total{${none}}`)).toBe(1);
    expect(sample(text, `ckpt_failures_total{kind="timeout",${none}}`)).toBe(1);
    expect(sample(text, `ckpt_failures_total{kind="lease_lost",${none}}`)).toBe(1);
    expect(sample(text, `ckpt_failures_total{kind="other",${none}}`)).toBe(1);
    expect(sample(text, 'ckpt_lease_takeovers_total')).toBe(2);
    expect(sample(text, `ckpt_handler_duration_seconds_count{outcome="completed",${none}}`)).toBe(1);
    expect(sample(text, `ckpt_handler_duration_seconds_bucket{le="0.25",outcome="completed",${none}}`)).toBe(1);
    expect(sample(text, `ckpt_handler_duration_seconds_count{outcome="failed",${none}}`)).toBe(1);
    expect(sample(text, 'ckpt_discovery_to_claim_seconds_sum')).toBeCloseTo(0.04);
    expect(sample(text, 'ckpt_degraded')).toBe(1);
    expect(sample(text, 'ckpt_files{status="pending"}')).toBe(2);
    expect(sample(text, 'ckpt_files{status="completed"}')).toBe(1);
    expect(sample(text, 'ckpt_files{status="dead"}')).toBe(0);
    expect(sample(text, 'ckpt_wal_bytes')).toBe(fs.statSync(`${db}-wal`).size);
    expect(sample(text, 'ckpt_wal_bytes')).toBeGreaterThan(0);
    expect(text).toContain('# TYPE ckpt_handler_duration_seconds histogram');
    // Two Metrics in one process: separate registries, no "already registered" error.
    expect(() => new Metrics({ processMetrics: false })).not.toThrow();
  });

  it('labels by watch folder and file type, every folder present at 0 from the start; bytes, build info, heartbeat', async () => {
    const folders = [
      { folder: '/srv/in/orders', fileType: 'orders' },
      { folder: '/srv/in/stock', fileType: 'stock' },
    ];
    const m = new Metrics({ folders, build: { version: '1.2.3', store: 'sqlite' }, processMetrics: false });
    const before = await m.text();
    for (const f of folders) {
      const l = `folder="${f.folder}",file_type="${f.fileType}"`;
      expect(sample(before, `ckpt_completions_total{${l}}`)).toBe(0);
      expect(sample(before, `ckpt_handled_bytes_total{${l}}`)).toBe(0);
      expect(sample(before, `ckpt_failures_total{kind="exit",${l}}`)).toBe(0);
    }
    m.claimed(1, folders[0]!);
    m.completed(20, folders[0]!, 4_096);
    m.completed(30, folders[0]!, 1_000);
    m.failed('exit', 10, folders[1]!);
    m.heartbeat(1_700_000_000_500);
    const text = await m.text();
    expect(sample(text, 'ckpt_claims_total{folder="/srv/in/orders",file_type="orders"}')).toBe(1);
    expect(sample(text, 'ckpt_completions_total{folder="/srv/in/orders",file_type="orders"}')).toBe(2);
    expect(sample(text, 'ckpt_handled_bytes_total{folder="/srv/in/orders",file_type="orders"}')).toBe(5_096);
    expect(sample(text, 'ckpt_handled_bytes_total{folder="/srv/in/stock",file_type="stock"}')).toBe(0);
    expect(sample(text, 'ckpt_failures_total{kind="exit",folder="/srv/in/stock",file_type="stock"}')).toBe(1);
    expect(sample(text, 'ckpt_handler_duration_seconds_count{outcome="failed",folder="/srv/in/stock",file_type="stock"}')).toBe(1);
    expect(sample(text, 'ckpt_build_info{version="1.2.3",store="sqlite"}')).toBe(1);
    expect(sample(text, 'ckpt_last_heartbeat_timestamp_seconds')).toBe(1_700_000_000.5);
  });

  it('the oldest pending file\'s age from the ledger read, 0 when nothing waits', async () => {
    const { store } = await storeWithRows();
    let t = Date.now();
    const m = new Metrics({ ledger: () => store.stats(t), countsCacheMs: 0, now: () => t, processMetrics: false });
    const { oldestPendingAt } = await store.stats(t);
    expect(oldestPendingAt).not.toBeNull();
    t = Date.parse(oldestPendingAt!) + 90_000;
    const text = await m.text();
    expect(sample(text, 'ckpt_oldest_pending_age_seconds')).toBe(90);
    expect(sample(text, 'ckpt_files{status="pending"}')).toBe(2);
    for (const c of await store.claim(10, { workerId: 'w', leaseMs: 30_000, now: t })) {
      await store.complete([{ fileUrl: c.fileUrl, token: c.token, now: t, stats: { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 } }]);
    }
    expect(sample(await m.text(), 'ckpt_oldest_pending_age_seconds')).toBe(0);
  });

  it('reads counts at most once per cache period, and keeps the last value when the store fails', async () => {
    let t = 1_000_000;
    let calls = 0;
    let fail = false;
    const counts: Record<Status, number> = { pending: 1, processing: 0, completed: 0, failed: 0, dead: 0 };
    const m = new Metrics({
      counts: async () => {
        calls++;
        if (fail) throw new Error('database is locked');
        return { ...counts };
      },
      countsCacheMs: 5_000,
      now: () => t,
      processMetrics: false,
    });
    await Promise.all([m.text(), m.text(), m.text()]);
    expect(calls).toBe(1);
    counts.pending = 7;
    t += 4_999;
    expect(sample(await m.text(), 'ckpt_files{status="pending"}')).toBe(1);
    expect(calls).toBe(1);
    t += 1;
    expect(sample(await m.text(), 'ckpt_files{status="pending"}')).toBe(7);
    expect(calls).toBe(2);
    fail = true;
    t += 10_000;
    expect(sample(await m.text(), 'ckpt_files{status="pending"}')).toBe(7);
  });

  it('folds anything that is not an identifier into kind="other"', () => {
    expect(failureLabel('exit')).toBe('exit');
    expect(failureLabel('lease_lost')).toBe('lease_lost');
    expect(failureLabel('Exit')).toBe('other');
    expect(failureLabel('/in/file.csv')).toBe('other');
    expect(failureLabel('x'.repeat(40))).toBe('other');
  });
});

describe('healthFromMode', () => {
  it('normal is ok; degraded is not, with since and why', () => {
    expect(healthFromMode({ mode: 'normal', since: null, reason: null })).toEqual({ ok: true, mode: 'normal' });
    expect(healthFromMode({ mode: 'degraded', since: 5, reason: 'locked' })).toEqual({ ok: false, mode: 'degraded', since: 5, reason: 'locked' });
  });
});

describe('startHttpServer', () => {
  it('serves /metrics and /healthz (200, then 503 with the reason) on loopback', async () => {
    const { store, db } = await storeWithRows();
    const m = new Metrics({ counts: () => store.counts(), databasePath: db });
    let health: Health = { ok: true, mode: 'normal' };
    const { logger } = quietLogger();
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, metrics: m, health: () => health, logger });
    servers.push(server);
    expect(server.port).toBeGreaterThan(0);

    const metrics = await get(server.port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(metrics.body, 'ckpt_files{status="pending"}')).toBe(2);
    expect(metrics.body).toContain('process_resident_memory_bytes');

    const ok = await get(server.port, '/healthz');
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^application\/json/);
    expect(JSON.parse(ok.body)).toEqual({ status: 'ok', mode: 'normal' });

    const since = Date.UTC(2026, 10, 28, 3, 0, 0);
    health = { ok: false, mode: 'degraded', since, reason: 'database locked for 12 s (SQLITE_BUSY); working from the journal' };
    const bad = await get(server.port, '/healthz?verbose=1');
    expect(bad.status).toBe(503);
    expect(JSON.parse(bad.body)).toEqual({ status: 'unhealthy', mode: 'degraded', since: '2026-11-28T03:00:00.000Z', reason: health.reason });

    const head = await get(server.port, '/healthz', 'HEAD');
    expect(head.status).toBe(503);
    expect(head.body).toBe('');
    expect((await get(server.port, '/nope')).status).toBe(404);
    expect((await get(server.port, '/metrics', 'POST')).status).toBe(405);
  });

  it('a health callback that throws is a 503 with its message, and the server keeps serving', async () => {
    const { logger, lines } = quietLogger();
    const server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      metrics: new Metrics({ processMetrics: false }),
      health: () => {
        throw new Error('probe failed: SQLITE_CORRUPT');
      },
      logger,
    });
    servers.push(server);
    const r = await get(server.port, '/healthz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({ status: 'unhealthy', reason: 'probe failed: SQLITE_CORRUPT' });
    expect(lines.join('')).toContain('http request failed');
    expect((await get(server.port, '/metrics')).status).toBe(200);
  });

  it('a port in use is a clear error; close() frees the port even with a keep-alive client', async () => {
    const { logger } = quietLogger();
    const metrics = new Metrics({ processMetrics: false });
    const a = await startHttpServer({ host: '127.0.0.1', port: 0, metrics, health: () => ({ ok: true, mode: 'normal' }), logger });
    await expect(startHttpServer({ host: '127.0.0.1', port: a.port, metrics, health: () => ({ ok: true, mode: 'normal' }), logger })).rejects.toThrow(
      `cannot listen on 127.0.0.1:${a.port} for /metrics and /healthz: the port is in use`,
    );
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: a.port, path: '/healthz', agent }, (res) => res.resume().on('end', resolve)).on('error', reject),
    );
    await a.close();
    agent.destroy();
    const again = await startHttpServer({ host: '127.0.0.1', port: a.port, metrics, health: () => ({ ok: true, mode: 'normal' }), logger });
    servers.push(again);
    expect(again.port).toBe(a.port);
  });
});
