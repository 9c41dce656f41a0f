/**
 * `ckpt retry FILE... | --dead [--type T]`: put failed or dead files back to pending with a
 * fresh retry budget (the store's requeue), and say how many.
 */
import fs from 'node:fs';
import type { ResolvedConfig } from '../../config/types.js';
import { formatCount, printable } from '../../ops/format.js';
import type { CheckpointStore, ListQuery, Status } from '../../store/types.js';
import { retryUsageProblem } from '../args.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withStore } from '../context.js';
import { print, printErr, printJson } from '../output.js';
import { findFile } from './show.js';

export interface RetryOptions {
  dead?: boolean;
  type?: string;
  json?: boolean;
}

export interface RetryJson {
  requeued: number;
  /** Named files the ledger does not know (exit 65). */
  notFound: string[];
  /** Named files in a status that cannot be requeued (pending, processing, completed). */
  skipped: { file: string; status: Status }[];
  /**
   * Requeued files that are no longer where they were found (an onDead "moveTo" moved them):
   * unless moved back first, their next attempt ends at once as "vanished".
   */
  missing: string[];
}

/** Every dead file (of one type), paged: the ones `--dead` is about to requeue. */
async function deadFiles(store: CheckpointStore, fileType: string | undefined): Promise<string[]> {
  const out: string[] = [];
  for (let after: string | undefined; ; ) {
    const q: ListQuery = { status: 'dead', limit: 1_000 };
    if (fileType !== undefined) q.fileType = fileType;
    if (after !== undefined) q.after = after;
    const page = await store.list(q);
    out.push(...page.map((r) => r.fileUrl));
    if (page.length < 1_000) return out;
    after = page[page.length - 1]?.fileUrl;
  }
}

export async function retryCommand(config: ResolvedConfig, files: readonly string[], opts: RetryOptions): Promise<number> {
  const problem = retryUsageProblem(files, opts);
  if (problem !== null) throw new CliError(EXIT.USAGE, problem);
  const result = await withStore(config, async (store) => {
    const doc: RetryJson = { requeued: 0, notFound: [], skipped: [], missing: [] };
    const targets: string[] = [];
    for (const typed of files) {
      const r = await findFile(store, typed, process.cwd());
      if (r === null) doc.notFound.push(typed);
      else if (r.status === 'failed' || r.status === 'dead') targets.push(r.fileUrl);
      else doc.skipped.push({ file: r.fileUrl, status: r.status });
    }
    if (targets.length > 0 || opts.dead) {
      const candidates = new Set([...targets, ...(opts.dead ? await deadFiles(store, opts.type) : [])]);
      doc.missing = [...candidates].filter((f) => !fs.existsSync(f));
      const q: Parameters<typeof store.requeue>[0] = { now: Date.now() };
      if (targets.length > 0) q.files = targets;
      if (opts.dead) q.dead = true;
      if (opts.type !== undefined) q.fileType = opts.type;
      doc.requeued = await store.requeue(q);
    }
    return doc;
  });

  if (opts.json) {
    printJson(result);
  } else {
    for (const f of result.notFound) printErr(`not in the ledger: ${printable(f)}`);
    for (const s of result.skipped) printErr(`not requeued (${s.status}; only failed or dead files can be): ${printable(s.file)}`);
    const what = opts.dead ? ` (dead${opts.type === undefined ? '' : `, type ${opts.type}`}${files.length > 0 ? ', and named' : ''})` : '';
    print(`requeued ${formatCount(result.requeued)} file${result.requeued === 1 ? '' : 's'}${what}`);
    if (result.missing.length > 0) {
      const shown = result.missing.slice(0, 5).map((f) => `  ${printable(f)}`);
      if (result.missing.length > 5) shown.push(`  ... and ${formatCount(result.missing.length - 5)} more`);
      printErr(
        [
          `warning: ${formatCount(result.missing.length)} requeued file${result.missing.length === 1 ? ' is' : 's are'} no longer where ckpt found ${result.missing.length === 1 ? 'it' : 'them'} (did "onDead" move ${result.missing.length === 1 ? 'it' : 'them'}?).`,
          'Move each back to that path, or its next attempt ends at once as vanished:',
          ...shown,
        ].join('\n'),
      );
    }
  }
  return result.notFound.length > 0 ? EXIT.DATA : EXIT.OK;
}
