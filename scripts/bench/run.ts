/**
 * Runs every benchmark scenario and regenerates BENCHMARKS.md from their results.
 *
 *   npm run bench                 short version of all (a few minutes on a quiet machine)
 *   npm run bench -- --full       the full version (under 25 minutes)
 *   npm run bench -- --only=1,5   re-run some scenarios; the others' sections are kept from the
 *                                 previous BENCHMARKS.md (its results are embedded in it as JSON)
 *   npm run bench -- --no-write   print, do not touch BENCHMARKS.md
 *   npm run bench -- --render     rewrite BENCHMARKS.md from the results embedded in it (after
 *                                 editing scripts/bench/findings.md), running nothing
 *
 * Each scenario is its own process (scripts/bench/<name>.ts), so that one's memory, timers and
 * children cannot bend the next one's numbers; it prints a table and one `BENCH_RESULT {json}`
 * line, collected here. BENCHMARKS.md is written from those, never by hand; the hand-written
 * findings (why a goal is missed, what was tried) live in scripts/bench/findings.md and are
 * copied in as they are.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BENCH_DIR, REPO, ensureLiteque, fmt, loadAverage, median, met, sqliteVersion, type ScenarioResult } from './lib.js';

const FULL = process.argv.includes('--full');
const WRITE = !process.argv.includes('--no-write');
const RENDER_ONLY = process.argv.includes('--render');
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');

interface Scenario {
  id: string;
  file: string;
  /** Kill it after this long (a hung scenario must not hang the unattended full run). */
  timeoutS: { short: number; full: number };
}

const SCENARIOS: Scenario[] = [
  { id: '1', file: 'pipeline.ts', timeoutS: { short: 240, full: 480 } },
  { id: '2', file: 'two-process.ts', timeoutS: { short: 180, full: 300 } },
  { id: '3', file: 'growth.ts', timeoutS: { short: 120, full: 240 } },
  { id: '4', file: 'command.ts', timeoutS: { short: 180, full: 300 } },
  { id: '5', file: 'producer.ts', timeoutS: { short: 300, full: 480 } },
  { id: '6', file: 'big-folder.ts', timeoutS: { short: 180, full: 420 } },
  { id: '7', file: 'latency.ts', timeoutS: { short: 90, full: 180 } },
  { id: '8', file: 'memory.ts', timeoutS: { short: 120, full: 600 } },
  { id: '9', file: 'after-actions.ts', timeoutS: { short: 900, full: 2400 } },
  { id: '10', file: 'kernel-readiness.ts', timeoutS: { short: 180, full: 420 } },
];

interface Outcome {
  scenario: Scenario;
  result: ScenarioResult | null;
  error: string | null;
  wallS: number;
  /** When this scenario ran (ISO), and the load average then. */
  at: string;
  load: string;
}

const RESULTS_MARK = '<!-- bench-results ';

function runScenario(s: Scenario): Promise<Outcome> {
  const t0 = performance.now();
  const at = new Date().toISOString();
  const load = loadAverage();
  const args = ['--import', 'tsx', path.join(BENCH_DIR, s.file), ...(FULL ? ['--full'] : [])];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    const text = d.toString();
    out += text;
    process.stdout.write(text.split('\n').filter((l) => !l.startsWith('BENCH_RESULT ')).join('\n'));
  });
  const limit = (FULL ? s.timeoutS.full : s.timeoutS.short) * 1000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
  }, limit);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const wallS = (performance.now() - t0) / 1000;
      const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (line) {
        resolve({ scenario: s, result: JSON.parse(line.slice('BENCH_RESULT '.length)) as ScenarioResult, error: null, wallS, at, load });
        return;
      }
      const why = timedOut ? `timed out after ${limit / 1000} s` : `exited with ${code ?? signal} before printing a result`;
      resolve({ scenario: s, result: null, error: why, wallS, at, load });
    });
  });
}

function build(): string | null {
  // The daemon scenarios run the real CLI from dist/; build it from the current sources.
  const r = spawnSync(process.execPath, [path.join(REPO, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: REPO, encoding: 'utf8' });
  if (r.status === 0) return null;
  const first = `${r.stdout}${r.stderr}`.trim().split('\n').slice(0, 3).join(' | ');
  return fs.existsSync(path.join(REPO, 'dist/cli/main.js')) ? `npm run build reported errors (dist/ may be stale): ${first}` : `build failed: ${first}`;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    return m?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

function nproc(): string {
  const r = spawnSync('nproc', { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : String(os.availableParallelism());
}

function fsOfTmp(): string {
  const r = spawnSync('df', ['-T', os.tmpdir()], { encoding: 'utf8' });
  const cols = r.stdout?.trim().split('\n')[1]?.split(/\s+/);
  return cols ? `${cols[1]} (${cols[0]})` : 'unknown';
}

function render(
  outcomes: Outcome[],
  ctx: { started: Date; loadStart: string; loadEnd: string; totalS: number; buildNote: string | null; litequeNote: string; full: boolean },
): string {
  const L: string[] = [];
  const full = ctx.full;
  const size = full ? 'full' : 'short';
  L.push('# Benchmarks');
  L.push('');
  L.push('<!-- Generated by scripts/bench/run.ts (`npm run bench`). Do not edit: run it again. -->');
  L.push('');
  // After `--only`, sections come from different runs: say so instead of one run's duration.
  const times = outcomes.map((o) => Date.parse(o.at)).filter((t) => Number.isFinite(t));
  const merged = times.length > 1 && Math.max(...times) - Math.min(...times) > (ctx.totalS + 60) * 1000;
  const when = merged
    ? `last on ${ctx.started.toISOString()}, partly from earlier runs (each section says when it ran and under what load)`
    : `on ${ctx.started.toISOString()}, in ${Math.round(ctx.totalS)} s`;
  L.push(
    `This file was written by \`npm run bench${full ? ' -- --full' : ''}\` (the **${size}** run) ${when}. ` +
      `Every goal is a ratio (or a bound) from one run of its scenario: the things compared were measured ` +
      'side by side, interleaved, because absolute numbers on a shared 2-core machine swing several-fold from minute to minute. ' +
      'Figures are medians of the runs, with min-max beside them.',
  );
  if (!full) {
    L.push('');
    L.push('The short run uses smaller sizes than the goals name where the full size takes minutes (each scenario says so in its notes); `npm run bench -- --full` runs the sizes the goals name.');
  }
  L.push('');
  L.push('## Machine');
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| cores (nproc) | ${nproc()} |`);
  L.push(`| CPU | ${cpuModel()} |`);
  L.push(`| memory | ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB |`);
  L.push(`| Node | ${process.version} |`);
  L.push(`| SQLite (better-sqlite3 ${readVersion('better-sqlite3')}) | ${sqliteVersion()} |`);
  L.push(`| chokidar | ${readVersion('chokidar')} |`);
  L.push(`| temp folder file system | ${fsOfTmp()} |`);
  L.push(`| load average (1/5/15 min) at start / end | ${ctx.loadStart} / ${ctx.loadEnd} |`);
  L.push(`| date | ${ctx.started.toISOString()} |`);
  L.push('');
  L.push('## Goals');
  L.push('');
  L.push('| # | goal | reached | met | how |');
  L.push('|---|---|---|---|---|');
  for (const o of outcomes) {
    if (!o.result) {
      L.push(`| ${o.scenario.id} | (${o.scenario.file}) | - | not run: ${o.error} | |`);
      continue;
    }
    for (const r of o.result.ratios) {
      const ok = met(r);
      L.push(`| ${o.result.id} | ${r.goal} | ${fmt(r.value)} | ${ok === null ? 'n/a' : ok ? 'yes' : '**no**'} | ${r.how} |`);
    }
  }
  L.push('');
  L.push('## Commands');
  L.push('');
  L.push('```sh');
  L.push('npm run bench                      # short version of all, regenerates this file');
  L.push('npm run bench -- --full            # the full version');
  for (const s of SCENARIOS) L.push(`node --import tsx scripts/bench/${s.file}${' '.repeat(Math.max(1, 18 - s.file.length))}# scenario ${s.id} alone (add --full)`);
  L.push('# where the CPU of the no-op pipeline goes, per file (docs/performance.md):');
  L.push('node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx scripts/bench/profile-pipeline.ts');
  L.push('node --import tsx scripts/bench/cpuprofile-summary.ts /tmp/prof/<largest>.cpuprofile <the --window and --files it printed>');
  L.push('```');
  L.push('');
  L.push('## Results');
  for (const o of outcomes) {
    L.push('');
    if (!o.result) {
      L.push(`### ${o.scenario.id}. ${o.scenario.file}`);
      L.push('');
      L.push(`Not run: ${o.error}.`);
      continue;
    }
    const r = o.result;
    L.push(`### ${r.id}. ${r.title}`);
    L.push('');
    L.push(`\`scripts/bench/${o.scenario.file}\`, ${r.size} run at ${o.at} (load ${o.load}), ${Math.round(o.wallS)} s; ${Object.entries(r.params).map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : fmt(v)) : String(v)}`).join(', ')}.`);
    L.push('');
    L.push('| measured | median | min-max | runs | |');
    L.push('|---|---|---|---|---|');
    for (const m of r.measures) {
      const range = m.runs.length > 1 ? `${fmt(Math.min(...m.runs))} to ${fmt(Math.max(...m.runs))}` : '';
      L.push(`| ${m.name} | ${fmt(median(m.runs))} ${m.unit} | ${range} | ${m.runs.length} | ${m.note ?? ''} |`);
    }
    L.push('');
    L.push('| goal | reached | met |');
    L.push('|---|---|---|');
    for (const q of r.ratios) {
      const ok = met(q);
      L.push(`| ${q.goal} | ${fmt(q.value)} (${q.how}) | ${ok === null ? 'n/a' : ok ? 'yes' : '**no**'} |`);
    }
    if (r.notes.length) {
      L.push('');
      for (const n of r.notes) L.push(`- ${n}`);
    }
  }
  // The PostgreSQL section is measured on its own (scripts/bench/pg-claim-complete.ts --write)
  // and kept in a file of its own, so that regenerating this file never drops it.
  const pgResults = path.join(BENCH_DIR, 'pg-results.md');
  if (fs.existsSync(pgResults)) {
    L.push('');
    L.push(fs.readFileSync(pgResults, 'utf8').trim());
  }
  L.push('');
  L.push('## Set-up notes');
  L.push('');
  if (ctx.buildNote) L.push(`- Build: ${ctx.buildNote}`);
  L.push(`- liteque: ${ctx.litequeNote}`);
  L.push('- plainjob 0.0.14 is a dev dependency of ckpt (same better-sqlite3 12); liteque 0.8.0 lives in scripts/bench/liteque with its own package.json and better-sqlite3 11.3.0, because liteque fails with better-sqlite3 11.10 and later ("Transaction function cannot return a promise").');
  L.push('- The daemon scenarios run the real CLI (`node dist/cli/main.js run`) as a child process, logging JSON at info to a file, with a module handler from scripts/bench/fixtures/.');
  const findings = path.join(BENCH_DIR, 'findings.md');
  if (fs.existsSync(findings)) {
    L.push('');
    L.push(fs.readFileSync(findings, 'utf8').trim());
  }
  L.push('');
  L.push(`${RESULTS_MARK}${JSON.stringify(outcomes).replaceAll('--', '-\\u002d')} -->`);
  L.push('');
  return L.join('\n');
}

/** The outcomes embedded in an earlier BENCHMARKS.md, for `--only`. */
function previousOutcomes(): Outcome[] {
  try {
    const md = fs.readFileSync(path.join(REPO, 'BENCHMARKS.md'), 'utf8');
    const i = md.lastIndexOf(RESULTS_MARK);
    if (i < 0) return [];
    const json = md.slice(i + RESULTS_MARK.length, md.indexOf(' -->', i));
    return JSON.parse(json) as Outcome[];
  } catch {
    return [];
  }
}

function readVersion(pkg: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  if (RENDER_ONLY) {
    const prev = previousOutcomes();
    if (prev.length === 0) throw new Error('BENCHMARKS.md holds no embedded results to render from: run the benchmarks');
    const head = fs.readFileSync(path.join(REPO, 'BENCHMARKS.md'), 'utf8');
    const ctxOf = (re: RegExp) => re.exec(head)?.[1] ?? '?';
    const md = render(prev, {
      started: new Date(ctxOf(/\| date \| ([^ |]+) \|/)),
      loadStart: ctxOf(/at start \/ end \| (.+?) \/ /),
      loadEnd: ctxOf(/at start \/ end \| .+? \/ (.+?) \|/),
      totalS: Number(ctxOf(/, in (\d+) s\./)) || 0,
      buildNote: null,
      litequeNote: ctxOf(/- liteque: (.+)\n/),
      full: prev.some((o) => o.result?.size === 'full'),
    });
    fs.writeFileSync(path.join(REPO, 'BENCHMARKS.md'), md);
    process.stderr.write('[bench] re-rendered BENCHMARKS.md from its embedded results\n');
    return;
  }
  const started = new Date();
  const t0 = performance.now();
  const loadStart = loadAverage();
  process.stderr.write(`[bench] ${FULL ? 'full' : 'short'} run; building dist/ ...\n`);
  const buildNote = build();
  if (buildNote) process.stderr.write(`[bench] ${buildNote}\n`);
  const lq = ensureLiteque();
  const litequeNote = lq.ready
    ? `installed in scripts/bench/liteque${lq.installMs > 0 ? ` by this run (${Math.round(lq.installMs / 1000)} s, not counted in the scenarios)` : ''}.`
    : `left out: ${lq.reason}`;
  const outcomes: Outcome[] = [];
  for (const s of SCENARIOS) {
    if (ONLY && !ONLY.includes(s.id)) continue;
    process.stderr.write(`\n[bench] scenario ${s.id}: ${s.file}\n`);
    const o = await runScenario(s);
    if (o.error) process.stderr.write(`[bench] scenario ${s.id} failed: ${o.error}\n`);
    outcomes.push(o);
  }
  if (ONLY) {
    // Keep the other scenarios' last results, in scenario order.
    const prev = previousOutcomes().filter((p) => !ONLY.includes(p.scenario.id));
    outcomes.push(...prev);
    outcomes.sort((a, b) => Number(a.scenario.id) - Number(b.scenario.id));
  }
  const totalS = (performance.now() - t0) / 1000;
  const md = render(outcomes, { started, loadStart, loadEnd: loadAverage(), totalS, buildNote, litequeNote, full: FULL });
  if (WRITE) {
    fs.writeFileSync(path.join(REPO, 'BENCHMARKS.md'), md);
    process.stderr.write(`\n[bench] wrote BENCHMARKS.md (${Math.round(totalS)} s)\n`);
  } else {
    process.stdout.write(md);
  }
  const failed = outcomes.filter((o) => !o.result).length;
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
