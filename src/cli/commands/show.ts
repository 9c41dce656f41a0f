/**
 * `ckpt show FILE`: one file's row and every attempt at it (worker, start, duration, outcome,
 * error) and what was done with the file afterwards; for a purged file, its tombstone.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ResolvedConfig } from '../../config/types.js';
import { errorSummary, formatAgo, formatCount, formatDuration } from '../../ops/format.js';
import { formatKeyValues, formatTable } from '../../ops/table.js';
import type { AttemptRecord, CheckpointStore, FileRecord, Tombstone } from '../../store/types.js';
import { findMovedFrom, lastAfterAction, whereMoved } from '../where-moved.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withStore } from '../context.js';
import { print, printJson } from '../output.js';
import { attemptJson, fileJson, type AttemptJson, type FileJson } from '../records.js';

export type ShowJson =
  | { file: FileJson; attempts: AttemptJson[] }
  /** A purged file: only its tombstone is left. */
  | { tombstone: Tombstone };

/**
 * The ledger keys files by absolute path. The operator may type a relative one, reach the
 * file through a symlinked folder, or name it where an after-action moved it: try the path as
 * typed (made absolute), then its real path, then (given the config) where it came from.
 */
export async function findFile(store: CheckpointStore, typed: string, cwd: string, config?: ResolvedConfig): Promise<FileRecord | null> {
  const abs = path.resolve(cwd, typed);
  const direct = await store.get(abs);
  if (direct !== null) return direct;
  let real: string | null = null;
  try {
    real = fs.realpathSync(abs);
  } catch {
    // Gone from the folder (moved or deleted after it was handled): only the typed path counts.
  }
  const viaReal = real !== null && real !== abs ? await store.get(real) : null;
  if (viaReal !== null || config === undefined) return viaReal;
  // Named where onDead/onSuccess put it: the row is under the path it was found at.
  return findMovedFrom(store, real ?? abs, config);
}

/** The error, if any, then what was done with the file (a move, a requeue's move back). */
function outcomeLine(a: AttemptRecord): string {
  const parts = [a.errorMessage !== null ? errorSummary(a.errorMessage, 70) : '', a.afterAction ?? ''].filter((p) => p !== '');
  return parts.join('; ');
}

/** A purged file: the tombstone is all that is left of it. */
export function renderTombstone(t: Tombstone, now: number): string {
  return [
    formatKeyValues([
      ['file', t.fileUrl],
      ['status', `purged on ${t.purgedAt} (${formatAgo(t.purgedAt, now)}), kept from re-running by a tombstone`],
      ['was', `${t.status}, version ${t.version}`],
    ]),
    '',
    'Its history was deleted by `ckpt purge`. `ckpt retry FILE` lets it run again (as the next version).',
  ].join('\n');
}

export function renderShow(r: FileRecord, attempts: readonly AttemptRecord[], now: number, roots: readonly string[] = []): string {
  const pairs: [string, string][] = [
    ['file', r.fileUrl],
    ['status', r.status],
    ['type', r.fileType],
    ['version', String(r.version)],
    ['attempts', `${r.attempts} (failures: ${r.retryCount})`],
  ];
  if (r.status === 'completed') {
    pairs.push(['records', `${formatCount(r.recordsTotal)} total, ${formatCount(r.recordsFiltered)} filtered, ${formatCount(r.recordsPersisted)} persisted`]);
  }
  pairs.push(
    ['size', `${formatCount(r.fileSize)} bytes, modified ${r.fileTimestamp}`],
    ['discovered', `${r.createdAt} (${formatAgo(r.createdAt, now)})`],
  );
  if (r.startedAt !== null) pairs.push(['started', `${r.startedAt} by ${r.processedBy ?? '?'}`]);
  if (r.completedAt !== null) pairs.push([r.status === 'dead' ? 'dead since' : 'finished', `${r.completedAt} after ${formatDuration(r.processingTimeMs)}`]);
  if (r.status === 'failed' && r.dueAt !== null) pairs.push(['next attempt', `${r.dueAt} (${formatAgo(r.dueAt, now)})`]);
  if (r.status === 'pending' && r.dueAt !== null) pairs.push(['waiting since', `${r.dueAt} (${formatAgo(r.dueAt, now)})`]);
  if (r.status === 'processing') {
    pairs.push(['lease until', r.dueAt ?? '-']);
    if (r.handlerPid !== null) pairs.push(['handler pid', String(r.handlerPid)]);
  }
  if (r.afterAction !== null) pairs.push(['after action', r.afterAction]);
  const moved = r.status === 'completed' || r.status === 'dead' ? whereMoved(r.fileUrl, lastAfterAction(attempts, r.version), roots) : null;
  if (moved !== null) pairs.push(['moved to', moved]);
  if (r.errorMessage !== null) pairs.push(['error', r.errorMessage.trimEnd()]);
  pairs.push(['updated', `${r.updatedAt} (${formatAgo(r.updatedAt, now)})`]);

  const out = [formatKeyValues(pairs), ''];
  if (attempts.length === 0) {
    out.push('no finished attempts yet');
  } else {
    out.push(
      formatTable(
        [
          { header: 'VERSION', align: 'right' },
          { header: 'ATTEMPT', align: 'right' },
          { header: 'WORKER' },
          { header: 'STARTED' },
          { header: 'DURATION', align: 'right' },
          { header: 'OUTCOME' },
          { header: 'ERROR / AFTER ACTION' },
        ],
        attempts.map((a) => [
          String(a.version),
          String(a.attempt),
          a.workerId,
          a.startedAt,
          a.durationMs === null ? '-' : formatDuration(a.durationMs),
          a.outcome,
          outcomeLine(a),
        ]),
      ),
    );
  }
  return out.join('\n');
}

export async function showCommand(config: ResolvedConfig, file: string, opts: { json?: boolean }): Promise<number> {
  const now = Date.now();
  type Found = { r: FileRecord; attempts: AttemptRecord[] } | { t: Tombstone } | null;
  const found = await withStore(config, async (store): Promise<Found> => {
    const r = await findFile(store, file, process.cwd(), config);
    if (r !== null) return { r, attempts: await store.attempts(r.fileUrl) };
    const t = await findTombstone(store, file, process.cwd());
    return t === null ? null : { t };
  });
  if (found === null) {
    throw new CliError(EXIT.DATA, `${path.resolve(file)}: not in the ledger (ckpt has not seen this file; \`ckpt list\` shows what it has)`);
  }
  if ('t' in found) {
    if (opts.json) printJson({ tombstone: found.t } satisfies ShowJson);
    else print(renderTombstone(found.t, now));
    return 0;
  }
  if (opts.json) {
    const doc: ShowJson = { file: fileJson(found.r), attempts: found.attempts.map(attemptJson) };
    printJson(doc);
  } else {
    print(renderShow(found.r, found.attempts, now, config.watch.map((w) => w.dir)));
  }
  return 0;
}

/** The tombstone of a purged file, looked up the way findFile looks up a row. */
export async function findTombstone(store: CheckpointStore, typed: string, cwd: string): Promise<Tombstone | null> {
  const abs = path.resolve(cwd, typed);
  const direct = await store.tombstone(abs);
  if (direct !== null) return direct;
  let real: string | null = null;
  try {
    real = fs.realpathSync(abs);
  } catch {
    // gone from the folder: only the typed path counts
  }
  return real !== null && real !== abs ? store.tombstone(real) : null;
}
