import fs from 'node:fs';
import path from 'node:path';
import type { HandlerStats } from '../types.js';
import type { ProcessIdentity } from './process-identity.js';
import { namesIn } from '../../dir-names.js';

/**
 * The fallback journal: one append-only NDJSON file per process beside the database
 * (`<db>.fallback/journal-<workerId>-<pid>-<startTicks>.ndjson`), holding every claim and
 * outcome made while the database could not be written. Outcomes are fsynced before the call
 * that made them returns (the runner runs the after-action only after `complete()` said 'ok'),
 * so a crash or a power cut after that loses nothing: the next ckpt to open the database
 * replays every journal whose owner is gone.
 *
 * Each entry carries the whole file row it touched (type, fingerprint, version, attempt,
 * token), so that replay can insert the row when the database lost it (salvage) and can tell
 * an outcome that was already replayed (same claim token) from a conflict.
 */

/** What every entry about a file carries. */
export interface FileEntryBase {
  at: number;
  /** The worker that holds (or held) the claim. */
  workerId: string;
  fileUrl: string;
  fileType: string;
  /** ISO mtime, as the store keeps it. */
  fileTimestamp: string;
  fingerprint: string;
  fileSize: number;
  version: number;
  attempt: number;
  retryCount: number;
  token: string;
  /** ISO time the attempt started. */
  startedAt: string;
}

export type JournalEntry =
  | ({ t: 'claim'; leaseExpiresAt: number } & FileEntryBase)
  | ({ t: 'complete'; stats: HandlerStats; afterAction: string | null } & FileEntryBase)
  | ({
      t: 'fail';
      status: 'failed' | 'dead';
      /** Epoch ms of the next attempt; null when dead. */
      dueAt: number | null;
      error: string;
      durationMs: number;
      /** Outcome for the attempts table ('failed', 'dead', 'timeout', 'vanished', ...). */
      outcome: string;
      /**
       * When dead: the onDead after-action about to run, recorded on the row as in normal mode,
       * so that a worker killed before finishing it has its move redone (absent in journals
       * written before this field existed).
       */
      afterAction?: string | null;
    } & FileEntryBase)
  | ({ t: 'release' } & FileEntryBase)
  /** A claim of a dead (or silent) owner taken over while degraded: its attempt ends here. */
  | ({ t: 'expired'; status: 'failed' | 'dead'; dueAt: number | null; error: string } & FileEntryBase);

export interface JournalHeader {
  t: 'open';
  at: number;
  workerId: string;
  owner: ProcessIdentity;
}

export const JOURNAL_PREFIX = 'journal-';
export const JOURNAL_SUFFIX = '.ndjson';

/** A worker id as part of a file name: anything outside [A-Za-z0-9._-] becomes '_'. */
export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
}

export class Journal {
  readonly file: string;
  private fd: number | null = null;

  constructor(
    readonly dir: string,
    readonly workerId: string,
    readonly owner: ProcessIdentity,
    private readonly fileMode = 0o600,
  ) {
    // pid and start time in the name: a later process that happens to get the same pid never
    // appends to a dead owner's journal (which must stay whole until it is replayed).
    this.file = path.join(dir, `${JOURNAL_PREFIX}${safeName(workerId)}-${owner.pid}-${owner.startTicks ?? '0'}${JOURNAL_SUFFIX}`);
  }

  get exists(): boolean {
    return this.fd !== null || fs.existsSync(this.file);
  }

  /**
   * Append entries; with `sync`, fdatasync before returning (outcomes). Claims are written
   * without a sync: a crash of ckpt keeps them (the page cache survives the process), and a
   * power cut loses only the knowledge that an attempt started, never an outcome.
   */
  append(entries: readonly JournalEntry[], opts: { sync: boolean }): void {
    if (entries.length === 0) return;
    const fd = this.open();
    const text = entries.map((e) => JSON.stringify(e)).join('\n') + '\n';
    writeAll(fd, Buffer.from(text, 'utf8'));
    if (opts.sync) fs.fdatasyncSync(fd);
  }

  private open(): number {
    if (this.fd !== null) return this.fd;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const created = !fs.existsSync(this.file);
    const fd = fs.openSync(this.file, 'a', this.fileMode);
    this.fd = fd;
    if (created) {
      const header: JournalHeader = { t: 'open', at: Date.now(), workerId: this.workerId, owner: this.owner };
      writeAll(fd, Buffer.from(JSON.stringify(header) + '\n', 'utf8'));
      fs.fdatasyncSync(fd);
      // The new name must survive a power cut too, or the synced entries would be unreachable.
      syncDir(this.dir);
    }
    return fd;
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  /** After a successful replay: the entries are in the database now. */
  remove(): void {
    this.close();
    removeJournal(this.file);
  }
}

export function removeJournal(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  syncDir(path.dirname(file));
}

export interface ReadJournal {
  file: string;
  header: JournalHeader | null;
  entries: JournalEntry[];
  /** Lines that could not be parsed (a torn last line after a crash is normal). */
  badLines: number;
}

export function readJournal(file: string): ReadJournal {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { file, header: null, entries: [], badLines: 0 };
    throw err;
  }
  let header: JournalHeader | null = null;
  const entries: JournalEntry[] = [];
  let badLines = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      badLines++;
      continue;
    }
    if (!v || typeof v !== 'object') {
      badLines++;
      continue;
    }
    const t = (v as { t?: unknown }).t;
    if (t === 'open') header ??= v as JournalHeader;
    else if (t === 'claim' || t === 'complete' || t === 'fail' || t === 'release' || t === 'expired') entries.push(v as JournalEntry);
    else badLines++;
  }
  return { file, header, entries, badLines };
}

/**
 * The owner a journal's file name names (`journal-<worker>-<pid>-<startTicks>.ndjson`, see
 * Journal), on `host`. The header says the same, but a journal being created is empty for a
 * moment (open, then the header's write), and a reader must not take that for a dead owner's.
 */
export function ownerFromName(file: string, host: string): ProcessIdentity | null {
  const m = /-(\d+)-(\d+)\.ndjson$/.exec(path.basename(file));
  if (!m) return null;
  return { pid: Number(m[1]), host, startTicks: m[2] === '0' ? null : m[2]! };
}

/** Who wrote a journal: its header's owner, or, before the header is written, the one its name gives. */
export function ownerOf(j: ReadJournal, host: string): ProcessIdentity | null {
  return j.header?.owner ?? ownerFromName(j.file, host);
}

/**
 * The journals of processes that are gone, except `ownFile`, each read after its owner was
 * judged gone by `alive` (a live owner may still be appending: read before the verdict, the
 * lines it wrote in between would be removed with the file unread). The file name gives the
 * owner, so a live owner's journal is not read at all; a journal whose named owner is gone is
 * read once, and its header, when it has one, has the last word.
 */
export function orphanJournals(dir: string, ownFile: string, host: string, alive: (id: ProcessIdentity) => boolean): ReadJournal[] {
  const out: ReadJournal[] = [];
  for (const f of listJournals(dir)) {
    if (f === ownFile) continue;
    const named = ownerFromName(f, host);
    if (named && alive(named)) continue;
    const j = readJournal(f);
    const owner = ownerOf(j, host);
    if (owner && alive(owner)) continue;
    out.push(j);
  }
  return out;
}

/** Journal files in the fallback folder (absolute paths), oldest name first. */
export function listJournals(dir: string): string[] {
  const names = namesIn(dir);
  return names
    .filter((n) => n.startsWith(JOURNAL_PREFIX) && n.endsWith(JOURNAL_SUFFIX))
    .sort()
    .map((n) => path.join(dir, n));
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the rename/unlink itself still happened.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
