/**
 * Claim + complete through SqliteStore alone (no watcher, no handler): one file per
 * transaction pair against batches of 64. Prints files/s for each; the store figure.
 *   node --import tsx scripts/bench/store-claim-complete.ts [files]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.js';

const N = Number(process.argv[2] ?? 20_000);
const stats = { totalRows: 1, filteredRows: 0, persistedRows: 1, durationMs: 1 };

async function run(batch: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-bench-store-'));
  const store = new SqliteStore(path.join(dir, 'b.db'));
  const files = Array.from({ length: N }, (_, i) => ({ fileUrl: `/in/f${i}`, fileType: 'csv', mtimeMs: 0, size: 1, fingerprint: `fp${i}` }));
  for (let i = 0; i < N; i += 512) await store.discover(files.slice(i, i + 512), 0);
  const t0 = performance.now();
  for (;;) {
    const now = Date.now();
    const cs = await store.claim(batch, { workerId: 'bench:1', leaseMs: 60_000, now });
    if (cs.length === 0) break;
    await store.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats, now })));
  }
  const rate = N / ((performance.now() - t0) / 1000);
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return rate;
}

const rows: string[] = [];
for (const batch of [1, 64]) {
  const rates: number[] = [];
  for (let r = 0; r < 3; r++) rates.push(await run(batch));
  rates.sort((a, b) => a - b);
  rows.push(`| claim+complete, batch ${batch} | ${Math.round(rates[1]!).toLocaleString('en')} files/s | ${Math.round(rates[0]!)}-${Math.round(rates[2]!)} |`);
}
console.log(`| ${N} files, median of 3 (load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}) | files/s | min-max |\n|---|---|---|\n${rows.join('\n')}`);
