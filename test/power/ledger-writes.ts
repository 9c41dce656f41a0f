/**
 * Reading a strace of ckpt: which write carried a file's outcome, and what in the trace
 * takes a file out of its folder.
 */
import path from 'node:path';
import { type Call, REMOVERS, fdPath, isWrite, quoted, sourcePath, unescapeBuffer } from './strace.js';

/** The SQLite -wal, or a degraded-mode journal. */
export function isLedgerFile(p: string | null): p is string {
  return p !== null && (p.endsWith('-wal') || /\.fallback\/journal-[^/]*$/.test(p));
}

/** The buffer a write or pwrite64 wrote (its second argument). */
export function written(c: Call): Buffer {
  return unescapeBuffer(quoted(c)[0] ?? '');
}

const TS = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Does this write record `file` as completed or dead? In the -wal: a file_checkpoints row is
 * stored as its columns back to back (file_url, file_type, file_timestamp, status, ...), so the
 * path, a type, a timestamp and the status follow each other in the page. In a journal: a
 * JSON line `{"t":"complete"|"fail",...,"fileUrl":...}` (a fail only when it made the file dead).
 */
export function recordsOutcome(c: Call, file: string): boolean {
  const where = fdPath(c);
  if (!isWrite(c) || !isLedgerFile(where)) return false;
  const text = written(c).toString('latin1');
  if (!text.includes(file)) return false;
  if (where.endsWith('-wal')) {
    return new RegExp(`${escapeRe(file)}[^\\0/]{0,80}?${TS}(completed|dead)`).test(text);
  }
  for (const line of text.split('\n')) {
    try {
      const e = JSON.parse(line) as { t?: string; fileUrl?: string; status?: string };
      if (e.fileUrl === file && (e.t === 'complete' || (e.t === 'fail' && e.status === 'dead'))) return true;
    } catch {
      // a partial line (a buffer cut by strace): not an outcome we can read
    }
  }
  return false;
}

/** First call that takes `file`'s name away (rename or unlink of that very path). */
export function firstRemoval(calls: readonly Call[], file: string): Call | undefined {
  return calls.find((c) => REMOVERS.has(c.name) && !c.ret.startsWith('-1') && sourcePath(c) === file);
}

/** First link(2) from `file` (the new name of a same-file-system move). */
export function firstLink(calls: readonly Call[], file: string): Call | undefined {
  return calls.find((c) => (c.name === 'link' || c.name === 'linkat') && !c.ret.startsWith('-1') && sourcePath(c) === file);
}

/** The name a link or rename gave (its second path argument). */
export function targetPath(c: Call): string | null {
  return quoted(c)[1] ?? null;
}

/** A sync of `p` (by descriptor path) that began after `after` ended and ended before `before` began. */
export function syncBetween(calls: readonly Call[], p: string, after: Call, before: Call | undefined): Call | undefined {
  return calls.find(
    (c) => (c.name === 'fsync' || c.name === 'fdatasync') && fdPath(c) === p && c.start > after.end && (before === undefined || c.end < before.start),
  );
}

export const folderOf = path.dirname;
