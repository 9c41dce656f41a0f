/**
 * Where a handled file is now, from its history: the runner records where the after-action left
 * a dead file (and a completed one that did not go where the plan says); otherwise the plan
 * itself tells (a move under its own name into the destination folder, src/run/after-action.ts).
 */
import path from 'node:path';
import type { ResolvedConfig } from '../config/types.js';
import { movedTo, moveTarget, plannedMoveDir } from '../run/after-action.js';
import { type AttemptRecord, type CheckpointStore, type FileRecord, REQUEUED } from '../store/types.js';

/** What the last after-action of this version did or planned ("moved to ...", "move:/dir", "deleted", ...), or null. */
export function lastAfterAction(history: readonly AttemptRecord[], version: number): string | null {
  let last: string | null = null;
  for (const a of history) if (a.version === version && a.outcome !== REQUEUED && a.afterAction !== null) last = a.afterAction;
  return last;
}

/**
 * Where the after-action `label` moved `fileUrl`, or null when it did not move it (kept,
 * deleted, failed) or the plan's watched folder is not configured any more.
 */
export function whereMoved(fileUrl: string, label: string | null, roots: readonly string[]): string | null {
  if (label === null) return null;
  const done = movedTo(label);
  if (done !== null) return done;
  const dir = plannedMoveDir(label);
  const root = dir === null ? undefined : rootOf(fileUrl, roots);
  return dir === null || root === undefined ? null : moveTarget(dir, root, fileUrl);
}

/** The innermost watched folder holding `fileUrl`. */
export function rootOf(fileUrl: string, roots: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const r of roots) {
    const rel = path.relative(r, fileUrl);
    if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) && (best === undefined || r.length > best.length)) best = r;
  }
  return best;
}

/**
 * The row of a file named where an after-action put it (`ckpt show dead/x.csv`): the ledger
 * keeps the path it was found at. Tried under each watched folder, and taken only when the
 * file's history says it went to exactly `abs`.
 */
export async function findMovedFrom(store: CheckpointStore, abs: string, config: ResolvedConfig): Promise<FileRecord | null> {
  const roots = config.watch.map((w) => w.dir);
  for (const a of [config.onDead, config.onSuccess]) {
    if (a.kind !== 'move' || rootOf(abs, [a.dir]) === undefined) continue;
    const rel = path.relative(a.dir, abs);
    for (const root of roots) {
      const r = await store.get(path.join(root, rel));
      if (r !== null && whereMoved(r.fileUrl, lastAfterAction(await store.attempts(r.fileUrl), r.version), roots) === abs) return r;
    }
  }
  return null;
}
