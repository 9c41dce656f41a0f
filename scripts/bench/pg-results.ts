/**
 * The PostgreSQL section of BENCHMARKS.md. scripts/bench/pg-claim-complete.ts writes it to
 * scripts/bench/pg-results.md (with --write), and scripts/bench/run.ts copies that file into
 * BENCHMARKS.md: the PostgreSQL run (a server of its own, a minute or more) stays out of
 * `npm run bench`, and its last result survives every regeneration of the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BENCH_DIR, fmt, median, type ScenarioResult } from './lib.js';

export const PG_RESULTS_FILE = path.join(BENCH_DIR, 'pg-results.md');

export interface PgRunContext {
  /** When the run started (ISO) and the load average (1/5/15 min) then and at the end. */
  at: string;
  loadStart: string;
  loadEnd: string;
  command: string;
}

export function renderPgSection(r: ScenarioResult, ctx: PgRunContext): string {
  const L: string[] = [];
  L.push(`## PostgreSQL: ${r.title}`);
  L.push('');
  L.push(
    `\`${ctx.command}\`, ${r.size} run at ${ctx.at} (load ${ctx.loadStart} at the start, ${ctx.loadEnd} at the end), ${Math.round(r.elapsedS)} s; ` +
      `${Object.entries(r.params).map(([k, v]) => `${k} ${typeof v === 'number' ? v.toLocaleString('en-US') : String(v)}`).join(', ')}. ` +
      'Not part of `npm run bench`: run the command above with `--write` to measure again and rewrite this section (scripts/bench/pg-results.md).',
  );
  L.push('');
  L.push(
    'The server is a throwaway cluster on this machine with its crash safety on (fsync, full_page_writes); ' +
      '`sync_commit=off` is the like-for-like comparison with SQLite in WAL mode with synchronous=NORMAL ' +
      '(a power cut may lose the last commits, never corrupts), `sync_commit=on` is PostgreSQL\'s default. ' +
      'Workers claim 64 files and complete them in one call, again and again, until the table is drained.',
  );
  L.push('');
  L.push('| measured | median | min-max | runs |');
  L.push('|---|---|---|---|');
  for (const m of r.measures) {
    const range = m.runs.length > 1 ? `${fmt(Math.min(...m.runs))} to ${fmt(Math.max(...m.runs))}` : '';
    L.push(`| ${m.name} | ${fmt(median(m.runs))} ${m.unit} | ${range} | ${m.runs.length} |`);
  }
  L.push('');
  for (const n of r.notes) L.push(`- ${n}`);
  return `${L.join('\n')}\n`;
}

export function writePgSection(r: ScenarioResult, ctx: PgRunContext): void {
  fs.writeFileSync(PG_RESULTS_FILE, renderPgSection(r, ctx));
}
