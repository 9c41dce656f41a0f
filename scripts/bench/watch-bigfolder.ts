/**
 * How the watch layer copes with a big folder: N files present at start, then new files
 * dropped one at a time. Not a test (timings are noisy); run it and read the numbers:
 *
 *   node --expose-gc --import tsx scripts/bench/watch-bigfolder.ts [files=20000] [stableMs=200] [samples=30]
 *
 * Reports: time for start() to resolve (chokidar's initial walk + our start-up scan), time
 * until every present file reached the sink, RSS, the drop-to-sink latency of new files
 * (p50/p90/max, and p50 minus stableMs: the part the watcher adds), and an idle rescan's cost.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { FolderWatcher } from '../../src/watch/watcher.js';

const files = Number(process.argv[2] ?? 20_000);
const stableMs = Number(process.argv[3] ?? 200);
const samples = Number(process.argv[4] ?? 30);

const mb = (n: number) => Math.round(n / 1024 / 1024);
/** RSS, and the live heap after a full GC when run with --expose-gc (RSS alone hides garbage). */
const mem = () => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) g();
  const m = process.memoryUsage();
  return `rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)} MB${g ? ' after gc' : ''}`;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-bench-watch-'));
  try {
    const t0 = performance.now();
    for (let i = 0; i < files; i++) fs.writeFileSync(path.join(dir, `present-${i}.csv`), `row ${i}\n`);
    console.log(`created ${files} files in ${Math.round(performance.now() - t0)} ms; ${mem()}`);

    const seen = new Map<string, number>();
    const fingerprints = new Map<string, string>();
    let duplicates = 0;
    let presentHanded = 0;
    let allPresentAt = 0;
    const w = new FolderWatcher({
      folders: [{ dir, include: ['*.csv'], exclude: [], fileType: 'bench', poll: false, readyMarker: null }],
      stableMs,
      rescanMs: 3_600_000,
      logger: pino({ level: 'info' }, pino.destination(2)),
      sink: async (batch) => {
        const now = performance.now();
        for (const f of batch) {
          if (seen.has(f.fileUrl)) {
            duplicates++;
            if (duplicates <= 5) console.log(`handed again: ${f.fileUrl} ${f.fingerprint} (before: ${fingerprints.get(f.fileUrl)})`);
          }
          fingerprints.set(f.fileUrl, f.fingerprint);
          seen.set(f.fileUrl, now);
          if (path.basename(f.fileUrl).startsWith('present-') && ++presentHanded === files) allPresentAt = now;
        }
      },
    });
    const tStart = performance.now();
    await w.start();
    const startMs = performance.now() - tStart;
    while (allPresentAt === 0 && files > 0) await delay(10);
    console.log(
      `start() resolved after ${Math.round(startMs)} ms; all ${files} present files handed after ${Math.round(allPresentAt - tStart)} ms; ${mem()}`,
    );

    const lat: number[] = [];
    for (let i = 0; i < samples; i++) {
      const p = path.join(dir, `new-${i}.csv`);
      const dropped = performance.now();
      fs.writeFileSync(p, 'new\n');
      while (!seen.has(p) && performance.now() - dropped < 30_000) await delay(1);
      if (!seen.has(p)) {
        console.log(`new-${i}.csv not handed within 30 s; stats ${JSON.stringify(w.stats)}`);
        continue;
      }
      lat.push((seen.get(p) as number) - dropped);
      await delay(20);
    }
    if (lat.length > 0) {
      console.log(
        `new file drop-to-sink over ${samples} samples: p50 ${pct(lat, 50).toFixed(1)} ms, p90 ${pct(lat, 90).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms ` +
          `(stableMs ${stableMs}: watcher adds ${(pct(lat, 50) - stableMs).toFixed(1)} ms at p50); ${mem()}`,
      );
    }

    const scans = w.stats.scans;
    const tScan = performance.now();
    w.rescan();
    while (w.stats.scans === scans) await delay(5);
    console.log(`idle rescan of ${files + samples} handed files: ${Math.round(performance.now() - tScan)} ms; ${mem()}`);
    console.log(`files handed more than once: ${duplicates}; stats ${JSON.stringify(w.stats)}`);
    await w.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
