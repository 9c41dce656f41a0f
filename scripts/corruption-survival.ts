/**
 * How much of a corrupt ckpt database survives, per kind of damage (issue 4's goal table).
 *
 *   npx tsx scripts/corruption-survival.ts [files=20000]
 *
 * Builds a database as a running ckpt leaves it (N files completed through the store, each
 * with its attempt row, then closed, i.e. checkpointed: the -wal cannot help), damages a copy
 * in each of four ways, opens it with the FallbackStore (which moves the file aside and
 * salvages it), then offers every file again as the watcher's start-up scan would, and counts
 * - survived: completed records in the salvaged database,
 * - handled again: completed files that were handed out again (their record was lost),
 * - of which survived: handed out although their record survived (must be 0).
 * The second group of columns repeats it with a snapshot (snapshot.ts) taken when 90% of the
 * files were completed, i.e. the last 10% completed after it (an hourly snapshot, an hour
 * with 10% of the traffic since).
 *
 * Prints a Markdown table for docs/degraded-mode.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FallbackStore } from '../src/store/fallback/fallback-store.js';
import { takeSnapshot } from '../src/store/fallback/snapshot.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import type { DiscoveredFile } from '../src/store/types.js';

const N = Number(process.argv[2] ?? 20_000);
const KINDS = [
  ['a', 'first 100 bytes overwritten'],
  ['b', 'one page in the middle overwritten'],
  ['c', 'truncated to half'],
  ['d', 'replaced by random bytes'],
] as const;
type Kind = (typeof KINDS)[number][0];

const stats = { totalRows: 10, filteredRows: 1, persistedRows: 9, durationMs: 5 };
const T = 1_790_000_000_000;
const list: DiscoveredFile[] = Array.from({ length: N }, (_, i) => ({
  fileUrl: `/srv/ingest/inbox/2026/11/28/sensor-${String(i % 97).padStart(3, '0')}/reading-${String(i).padStart(7, '0')}.csv`,
  fileType: 'csv',
  mtimeMs: T + i,
  size: 4096 + (i % 1000),
  fingerprint: `${4096 + (i % 1000)}:${T + i}:2049:${1_000_000 + i}`,
}));

function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** `at`: where the page of (b) is, as a fraction of the file (default the middle). */
function damage(file: string, kind: Kind, at = 0.5): void {
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r+');
  try {
    if (kind === 'a') fs.writeSync(fd, noise(100, 1), 0, 100, 0);
    else if (kind === 'b') fs.writeSync(fd, noise(4096, 7), 0, 4096, Math.floor((size / 4096) * at) * 4096);
    else if (kind === 'c') fs.ftruncateSync(fd, Math.floor(size / 2));
    else fs.writeSync(fd, noise(size, 11), 0, size, 0);
  } finally {
    fs.closeSync(fd);
  }
}

async function build(dir: string): Promise<{ db: string; snapshot: string }> {
  const db = path.join(dir, 'pristine.db');
  const s = new SqliteStore(db);
  const snapshotDir = path.join(dir, 'snap');
  let snapshot = '';
  for (let i = 0; i < N; i += 500) {
    const batch = list.slice(i, i + 500);
    await s.discover(batch, T + i);
    const cs = await s.claim(batch.length, { workerId: 'ingest-1', leaseMs: 60_000, now: T + i });
    await s.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats, now: T + i, afterAction: 'keep' })));
    if (!snapshot && i + 500 >= 0.9 * N) snapshot = (await takeSnapshot(s.db, snapshotDir)).file;
  }
  await s.close();
  return { db, snapshot };
}

interface Row {
  survived: number;
  handledAgain: number;
  ofWhichSurvived: number;
  ms: number;
}

async function trial(pristine: string, snapshot: string | null, kind: Kind, work: string, at = 0.5): Promise<Row> {
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const db = path.join(work, 'ckpt.db');
  fs.copyFileSync(pristine, db);
  damage(db, kind, at);
  if (snapshot) {
    fs.mkdirSync(`${db}.fallback`, { recursive: true });
    fs.copyFileSync(snapshot, path.join(`${db}.fallback`, 'snapshot.db'));
  }
  const t0 = Date.now();
  const store = new FallbackStore(db, { fallback: { workerId: 'survival', snapshotMs: 0, healthCheckMs: 0 } });
  const ms = Date.now() - t0;
  if (store.mode().mode !== 'normal') throw new Error(`${kind}: still degraded: ${store.mode().reason}`);
  const survivedSet = new Set<string>();
  for (let after: string | undefined; ; ) {
    const page = await store.list({ status: 'completed', limit: 5000, ...(after === undefined ? {} : { after }) });
    if (page.length === 0) break;
    for (const r of page) survivedSet.add(r.fileUrl);
    after = page[page.length - 1]!.fileUrl;
  }
  for (let i = 0; i < N; i += 1000) await store.discover(list.slice(i, i + 1000), Date.now());
  let handledAgain = 0;
  let ofWhichSurvived = 0;
  for (;;) {
    const cs = await store.claim(1000, { workerId: 'survival', leaseMs: 3_600_000, now: Date.now() });
    if (cs.length === 0) break;
    for (const c of cs) {
      handledAgain++;
      if (survivedSet.has(c.fileUrl)) ofWhichSurvived++;
    }
    await store.complete(cs.map((c) => ({ fileUrl: c.fileUrl, token: c.token, stats, now: Date.now() })));
  }
  await store.close();
  return { survived: survivedSet.size, handledAgain, ofWhichSurvived, ms };
}

const pct = (n: number) => `${((100 * n) / N).toFixed(2)}%`;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-survival-'));
try {
  const { db, snapshot } = await build(root);
  const size = fs.statSync(db).size;
  const lines: string[] = [];
  lines.push(`| damage | survived | handled again | of which survived | salvage | with snapshot: survived | handled again | of which survived |`);
  lines.push(`|---|---:|---:|---:|---:|---:|---:|---:|`);
  for (const [kind, label] of KINDS) {
    const plain = await trial(db, null, kind, path.join(root, `t-${kind}`));
    const snap = await trial(db, snapshot, kind, path.join(root, `s-${kind}`));
    lines.push(
      `| (${kind}) ${label} | ${plain.survived} (${pct(plain.survived)}) | ${plain.handledAgain} | ${plain.ofWhichSurvived} | ${plain.ms} ms ` +
        `| ${snap.survived} (${pct(snap.survived)}) | ${snap.handledAgain} | ${snap.ofWhichSurvived} |`,
    );
    if (kind === 'b') {
      // Which page is hit matters (a leaf of file_checkpoints, an index, an attempts page):
      // the worst of nine positions between 10% and 90% of the file.
      let worst: Row | null = null;
      let worstAt = 0;
      for (let k = 1; k <= 9; k++) {
        const r = await trial(db, null, 'b', path.join(root, `w-${k}`), k / 10);
        if (!worst || r.survived < worst.survived) (worst = r), (worstAt = k * 10);
      }
      lines.push(
        `| (b) the same, worst of 9 positions (10%..90%; here ${worstAt}%) | ${worst!.survived} (${pct(worst!.survived)}) | ${worst!.handledAgain} | ${worst!.ofWhichSurvived} | ${worst!.ms} ms | | | |`,
      );
    }
  }
  console.log(`${N} completed files, database ${(size / 1024 / 1024).toFixed(1)} MiB (page size 4096), checkpointed (no -wal);`);
  console.log(`snapshot taken after ${Math.ceil((0.9 * N) / 500) * 500} of them. Node ${process.version}, ${os.cpus().length} cores.`);
  console.log('');
  for (const l of lines) console.log(l);
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
