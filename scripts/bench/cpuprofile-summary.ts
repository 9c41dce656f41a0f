/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`) by self time: per function and per
 * module (file, or the package under node_modules), as a share of all samples and, with
 * --files=N, as microseconds per file. --window=a,b (microseconds of the monotonic clock, as
 * profile-pipeline.ts prints them) keeps only the samples inside it.
 *
 *   node --import tsx scripts/bench/cpuprofile-summary.ts FILE.cpuprofile [--files=N] [--window=a,b] [--top=30]
 *
 * First it prints the per-file table of docs/performance.md: each sample goes to the stage of
 * the nearest frame on its stack that belongs to one (CATEGORIES, leaf first), so that a native
 * call (an lstat, a write) counts for the code that made it.
 */
import fs from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

const file = process.argv.find((a) => a.endsWith('.cpuprofile'));
if (!file) throw new Error('usage: cpuprofile-summary.ts FILE.cpuprofile [--files=N] [--window=a,b] [--top=N]');
const arg = (n: string) => process.argv.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3);
const files = Number(arg('files') ?? 0);
const top = Number(arg('top') ?? 30);
const win = arg('window')?.split(',').map(Number);

const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));

/** Module of a call frame: a package under node_modules, a repo file, or V8's own (GC, program). */
function moduleOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url;
  const m = url.match(/\/(src|scripts)\/(.*)$/);
  return m ? `${m[1]}/${m[2]}` : url;
}

/**
 * Stages of a file's trip through the pipeline, by the code a frame belongs to; first match
 * wins. Store frames are split further by the store method they run under (see stage()).
 */
const CATEGORIES: [string, (url: string, fn: string) => boolean][] = [
  ['GC', (_u, fn) => fn === '(garbage collector)'],
  ['statements', (u) => u.includes('store/sqlite-store') || u.includes('store/record')],
  ['BEGIN IMMEDIATE / COMMIT (WAL write)', (u) => u.includes('node_modules/better-sqlite3')],
  ['time stamps (ISO text for the store)', (u) => u.includes('store/time')],
  ['file checks (lstat before and after, access)', (u) => u.includes('run/file-checks')],
  ['logging (pino: child logger, JSON line, write)', (u) => u.includes('node_modules/pino') || u.includes('node_modules/sonic-boom')],
  ['idempotency key (SHA-256 of the path)', (u) => u.includes('crypto/hash') || u.includes('store/idempotency')],
  ['handler dispatch (module handler: context, abort signal, timeout timer)', (u) => u.includes('run/module-handler') || u.includes('abort_controller') || u.includes('run/handler')],
  ['claim loop, settle, completion batcher (src/run)', (u) => /\/run\//.test(u)],
  // In a daemon's profile (BENCH_PROFILE_DIR) also:
  ['watcher (src/watch, src/native: events, lstat, readiness)', (u) => /\/(watch|native)\//.test(u)],
  ['degraded-mode layer (src/store/fallback: checks before each call)', (u) => u.includes('store/fallback/')],
];
const OTHER = 'idle / program / other';
const STORE_METHODS = new Set(['discover', 'claim', 'complete', 'heartbeat', 'setHandlerPid', 'fail', 'release', 'recordAfterAction']);
const STORE_STAGES = new Set(['statements', 'BEGIN IMMEDIATE / COMMIT (WAL write)', 'time stamps (ISO text for the store)']);

const parentOf = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const stageOf = new Map<number, string>();
function stage(id: number): string {
  const known = stageOf.get(id);
  if (known !== undefined) return known;
  let cur: number | undefined = id;
  let found = OTHER;
  while (cur !== undefined) {
    const { url, functionName } = byId.get(cur)!.callFrame;
    const hit = CATEGORIES.find(([, test]) => test(url, functionName));
    if (hit) {
      found = hit[0];
      break;
    }
    cur = parentOf.get(cur);
  }
  if (STORE_STAGES.has(found)) {
    // Which store call it serves: the nearest SqliteStore method up the stack.
    let method = 'other';
    for (let up: number | undefined = cur; up !== undefined; up = parentOf.get(up)) {
      const { url, functionName } = byId.get(up)!.callFrame;
      if (url.includes('store/sqlite-store') && STORE_METHODS.has(functionName)) {
        method = functionName;
        break;
      }
    }
    found = `store.${method}: ${found}`;
  }
  stageOf.set(id, found);
  return found;
}

const byStage = new Map<string, number>();
const selfFn = new Map<string, number>();
const selfMod = new Map<string, number>();
let total = 0;
let t = p.startTime;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  t += dt;
  if (win) {
    if (t < win[0]! || t > win[1]!) continue;
  }
  const n = byId.get(p.samples[i]!)!;
  const { functionName, url, lineNumber } = n.callFrame;
  const fnKey = `${functionName || '(anonymous)'} ${moduleOf(url, functionName)}:${lineNumber + 1}`;
  const mod = moduleOf(url, functionName);
  const next = p.timeDeltas[i + 1] ?? dt;
  selfFn.set(fnKey, (selfFn.get(fnKey) ?? 0) + next);
  selfMod.set(mod, (selfMod.get(mod) ?? 0) + next);
  const st = stage(n.id);
  byStage.set(st, (byStage.get(st) ?? 0) + next);
  total += next;
}

function print(title: string, m: Map<string, number>): void {
  console.log(`\n${title} (self time; total ${(total / 1000).toFixed(0)} ms${files ? `, ${(total / files).toFixed(1)} us/file` : ''})`);
  const rows = [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, v] of rows) {
    const share = ((100 * v) / total).toFixed(1).padStart(5);
    const perFile = files ? `${(v / files).toFixed(2).padStart(7)} us` : '';
    console.log(`${share}% ${perFile}  ${k}`);
  }
}
print('By stage', byStage);
print('By module', selfMod);
print('By function', selfFn);
