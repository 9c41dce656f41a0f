/**
 * `ckpt retry FILE... | --dead [--type T]`: put failed or dead files back to pending with a
 * fresh retry budget, so each runs again, once.
 *
 * - A file an after-action moved away (onDead "moveTo") is first brought back to the path it
 *   was found at (put-back.ts): never over another file; a taken path refuses that file.
 * - A file that is neither at its path nor where it was moved is refused: requeued, it would
 *   only be recorded "vanished" again.
 * - A purged file still lying in its folder (held by a tombstone) is let run again as the next
 *   version (store.revive).
 * - A completed file is refused, with where it went: ckpt runs a completed file once.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { ResolvedConfig } from '../../config/types.js';
import { formatCount, printable } from '../../ops/format.js';
import type { CheckpointStore, FileRecord, ListQuery, Status } from '../../store/types.js';
import { fingerprintOf, identityOf } from '../../file-identity.js';
import { retryUsageProblem } from '../args.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withStore } from '../context.js';
import { print, printErr, printJson } from '../output.js';
import { type Placed, finish, place, undo } from '../put-back.js';
import { lastAfterAction, rootOf, whereMoved } from '../where-moved.js';
import { findFile, findTombstone } from './show.js';

export interface RetryOptions {
  dead?: boolean;
  type?: string;
  json?: boolean;
}

export interface RetryJson {
  /** Files that run again: requeued, brought back, or revived. */
  requeued: number;
  /** Named files the ledger does not know (exit 65). */
  notFound: string[];
  /** Named files in a status that cannot be requeued (pending, processing, completed). */
  skipped: { file: string; status: Status; reason: string }[];
  /** Requeued files brought back from where an after-action had moved them. */
  movedBack: { file: string; from: string }[];
  /** Purged files let run again (their tombstone lifted). */
  revived: { file: string; purgedAt: string }[];
  /** Failed or dead files not requeued, and why (exit 65). */
  refused: { file: string; reason: string }[];
}

/** Every dead file (of one type), paged: the ones `--dead` is about to requeue. */
async function deadFiles(store: CheckpointStore, fileType: string | undefined): Promise<FileRecord[]> {
  const out: FileRecord[] = [];
  for (let after: string | undefined; ; ) {
    const q: ListQuery = { status: 'dead', limit: 1_000 };
    if (fileType !== undefined) q.fileType = fileType;
    if (after !== undefined) q.after = after;
    const page = await store.list(q);
    out.push(...page);
    if (page.length < 1_000) return out;
    after = page[page.length - 1]?.fileUrl;
  }
}

/** Who asked, for the history: "ckpt retry (user@host)". */
function requester(): string {
  try {
    return `ckpt retry (${os.userInfo().username}@${os.hostname()})`;
  } catch {
    return 'ckpt retry';
  }
}

export async function retryCommand(config: ResolvedConfig, files: readonly string[], opts: RetryOptions): Promise<number> {
  const problem = retryUsageProblem(files, opts);
  if (problem !== null) throw new CliError(EXIT.USAGE, problem);
  const by = requester();
  const result = await withStore(config, async (store) => {
    const doc: RetryJson = { requeued: 0, notFound: [], skipped: [], movedBack: [], revived: [], refused: [] };
    const targets = new Map<string, FileRecord>();
    for (const typed of files) {
      const r = await findFile(store, typed, process.cwd(), config);
      if (r === null) await reviveOrNotFound(store, config, typed, by, doc);
      else if (r.status === 'failed' || r.status === 'dead') targets.set(r.fileUrl, r);
      else doc.skipped.push({ file: r.fileUrl, status: r.status, reason: await skipReason(store, config, r) });
    }
    if (opts.dead) for (const r of await deadFiles(store, opts.type)) targets.set(r.fileUrl, r);
    await requeueAll(store, config, [...targets.values()], by, doc);
    return doc;
  });

  if (opts.json) {
    printJson(result);
  } else {
    for (const f of result.notFound) printErr(`not in the ledger: ${printable(f)}`);
    for (const s of result.skipped) printErr(`not requeued: ${printable(s.file)}: ${s.reason}`);
    for (const s of result.refused) printErr(`not requeued: ${printable(s.file)}: ${s.reason}`);
    for (const m of result.movedBack) print(`moved back: ${printable(m.from)} -> ${printable(m.file)}`);
    for (const v of result.revived) print(`tombstone lifted (purged ${v.purgedAt}): ${printable(v.file)} will run again`);
    const what = opts.dead ? ` (dead${opts.type === undefined ? '' : `, type ${opts.type}`}${files.length > 0 ? ', and named' : ''})` : '';
    print(`requeued ${formatCount(result.requeued)} file${result.requeued === 1 ? '' : 's'}${what}`);
  }
  return result.notFound.length > 0 || result.refused.length > 0 ? EXIT.DATA : EXIT.OK;
}

/**
 * Requeue the failed and dead files, bringing back those an after-action moved away. Files that
 * are in place go in one transaction; each brought-back one in its own, so that a file whose
 * requeue did not happen (its status changed meanwhile) goes back where it was.
 */
async function requeueAll(store: CheckpointStore, config: ResolvedConfig, rows: readonly FileRecord[], by: string, doc: RetryJson): Promise<void> {
  const inPlace: string[] = [];
  const roots = config.watch.map((w) => w.dir);
  for (const r of rows) {
    const here = fs.existsSync(r.fileUrl);
    const label = lastAfterAction(await store.attempts(r.fileUrl), r.version);
    const moved = whereMoved(r.fileUrl, label, roots);
    const away = moved !== null && moved !== r.fileUrl && fs.existsSync(moved);
    if (!away) {
      if (here) inPlace.push(r.fileUrl);
      else doc.refused.push({ file: r.fileUrl, reason: goneReason(label, moved) });
      continue;
    }
    const marker = config.watch.find((w) => w.dir === rootOf(r.fileUrl, roots))?.readyMarker ?? null;
    // Both names of one file: a retry killed after bringing it back; finish that one.
    const placed = here ? samePlaced(moved, r.fileUrl) : await place(moved, r.fileUrl, marker);
    if (placed === null) {
      doc.refused.push({ file: r.fileUrl, reason: `the path is taken by another file; the ${r.status} one stays at ${moved}` });
      continue;
    }
    if (placed === 'taken') {
      doc.refused.push({ file: r.fileUrl, reason: `the path was taken by another file meanwhile; the ${r.status} one stays at ${moved}` });
      continue;
    }
    await requeueMoved(store, placed, by, doc);
  }
  if (inPlace.length > 0) doc.requeued += await store.requeue({ files: inPlace, now: Date.now(), by });
}

/** `from` and `to` as a Placed when they name the same file (one inode), else null. */
function samePlaced(from: string, to: string): Placed | null {
  const a = fs.lstatSync(from, { throwIfNoEntry: false });
  const b = fs.lstatSync(to, { throwIfNoEntry: false });
  if (!a || !b || a.dev !== b.dev || a.ino !== b.ino) return null;
  const id = identityOf(a);
  return { from, to, fromId: id, toId: id, marker: null };
}

async function requeueMoved(store: CheckpointStore, placed: Placed, by: string, doc: RetryJson): Promise<void> {
  let n = 0;
  try {
    n = await store.requeue({ files: [placed.to], now: Date.now(), by, movedBack: new Map([[placed.to, placed.from]]) });
  } finally {
    if (n === 1) await finish(placed);
    else await undo(placed);
  }
  if (n === 1) {
    doc.requeued++;
    doc.movedBack.push({ file: placed.to, from: placed.from });
  } else {
    doc.refused.push({ file: placed.to, reason: `its status changed meanwhile; it stays at ${placed.from}` });
  }
}

function goneReason(label: string | null, moved: string | null): string {
  if (label !== null && label.startsWith('delete')) return 'the file is gone (the after-action deleted it); nothing to run';
  if (moved !== null) return `the file is neither at this path nor at ${moved}, where the after-action moved it; put it back at this path and retry`;
  return 'the file is no longer at this path; put it back and retry';
}

/** Why a named pending, processing or completed file is not requeued. */
async function skipReason(store: CheckpointStore, config: ResolvedConfig, r: FileRecord): Promise<string> {
  if (r.status !== 'completed') return `it is ${r.status}; only failed or dead files can be requeued`;
  const label = lastAfterAction(await store.attempts(r.fileUrl), r.version);
  const moved = whereMoved(r.fileUrl, label, config.watch.map((w) => w.dir));
  const where = moved !== null ? `moved to ${moved}` : label?.startsWith('delete') ? 'deleted' : `kept at its path`;
  const again =
    config.onChange === 'ignore'
      ? 'with onChange "ignore" it is not run again'
      : 'to run it again on purpose, copy it back into its watched folder: a new copy is a new version';
  return `completed ${r.completedAt ?? ''} (${where}); ckpt runs a completed file once (${again})`;
}

/** A named file with no row: purged (a tombstone holds it) and still there, or unknown. */
async function reviveOrNotFound(store: CheckpointStore, config: ResolvedConfig, typed: string, by: string, doc: RetryJson): Promise<void> {
  const tomb = await findTombstone(store, typed, process.cwd());
  if (tomb === null) {
    doc.notFound.push(typed);
    return;
  }
  const file = tomb.fileUrl;
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  const folder = config.watch.find((w) => w.dir === rootOf(file, config.watch.map((x) => x.dir)));
  if (st === undefined || !st.isFile() || folder === undefined) {
    const why = st === undefined ? 'it is no longer at this path (put it back there and retry to run it again)' : 'it is not a file in a watched folder';
    doc.refused.push({ file, reason: `purged ${tomb.purgedAt}, and ${why}: nothing to run` });
    return;
  }
  const lifted = await store.revive(
    { fileUrl: file, fileType: folder.fileType, mtimeMs: st.mtimeMs, size: st.size, fingerprint: fingerprintOf(st) },
    { now: Date.now(), by },
  );
  if (lifted === null) {
    doc.refused.push({ file, reason: 'its tombstone was lifted meanwhile (it is in the ledger again)' });
    return;
  }
  doc.revived.push({ file, purgedAt: lifted.purgedAt });
  doc.requeued++;
}
