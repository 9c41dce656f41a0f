/**
 * Builds, from a strace of a ckpt run that was stopped at some system call, the files as a
 * power cut at that moment could leave them.
 *
 * The crash model: a file's contents are what they were at its last fsync/fdatasync, and a
 * folder's names are what they were at its last fsync. Everything written or renamed after
 * that is lost. This is the pessimistic end of what SQLite's own crash tests assume (their
 * crash VFS drops, or garbles, every write not followed by a sync) and one of the crash states
 * ALICE derives from a syscall trace (it also tries every ordering and subset of the unsynced
 * operations a file system may persist; here the run is stopped at many points instead, and the
 * folders are taken both as they are and as of their last sync). It is the state a rule like
 * "the outcome is synced before the file leaves the folder" has to survive: in it, nothing the
 * program did not sync can be counted on.
 *
 * Database files are rebuilt by replaying the traced writes (pwrite64 with whole buffers,
 * ftruncate) up to each file's last sync over a copy taken before the run. The -shm is removed:
 * it is a cache that SQLite rebuilds from the -wal when the first connection opens.
 */
import fs from 'node:fs';
import path from 'node:path';
import { written } from './ledger-writes.js';
import { type Call, fdPath, isSync, ok, pwriteOffset, quoted } from './strace.js';

/** The contents of `file` at its last sync in `calls`, replayed over `base` (null: absent at the start). */
export function contentsAtLastSync(calls: readonly Call[], file: string, base: Buffer | null): Buffer | null {
  const mine = calls.filter((c) => fdPath(c) === file && ok(c));
  const lastSync = mine.filter(isSync).at(-1);
  let buf = base === null ? null : Buffer.from(base);
  if (!lastSync) return buf;
  for (const c of mine) {
    if (c.end >= lastSync.start) break;
    if (c.name === 'pwrite64') {
      const data = written(c);
      const off = pwriteOffset(c);
      const cur = buf ?? Buffer.alloc(0);
      const next = Buffer.alloc(Math.max(cur.length, off + data.length));
      cur.copy(next);
      data.copy(next, off);
      buf = next;
    } else if (c.name === 'ftruncate') {
      const size = Number(/, (\d+)$/.exec(c.args)?.[1] ?? NaN);
      const cur = buf ?? Buffer.alloc(0);
      const next = Buffer.alloc(size);
      cur.copy(next, 0, 0, Math.min(size, cur.length));
      buf = next;
    }
  }
  return buf;
}

/** Put the database as a power cut would leave it: each file as of its last sync, no -shm. */
export function rollBackDatabase(calls: readonly Call[], db: string, dbBefore: Buffer): void {
  const main = contentsAtLastSync(calls, db, dbBefore);
  const wal = contentsAtLastSync(calls, `${db}-wal`, null);
  fs.writeFileSync(db, main!);
  if (wal === null || wal.length === 0) fs.rmSync(`${db}-wal`, { force: true });
  else fs.writeFileSync(`${db}-wal`, wal);
  fs.rmSync(`${db}-shm`, { force: true });
}

interface NameOp {
  call: Call;
  kind: 'link' | 'rename' | 'unlink';
  from: string;
  to: string | null;
}

/** Changes of names in the traced folders, in order (successful calls only). */
function nameOps(calls: readonly Call[]): NameOp[] {
  const out: NameOp[] = [];
  for (const c of calls) {
    if (!ok(c)) continue;
    const [a, b] = quoted(c);
    if (a === undefined) continue;
    if (c.name === 'link' || c.name === 'linkat') out.push({ call: c, kind: 'link', from: a, to: b ?? null });
    else if (c.name.startsWith('rename')) out.push({ call: c, kind: 'rename', from: a, to: b ?? null });
    else if (c.name.startsWith('unlink')) out.push({ call: c, kind: 'unlink', from: a, to: null });
  }
  return out;
}

/**
 * Undo, on the real folders under `root`, every change of a name whose folder was not synced
 * after it: the folders as of their last fsync. `inodes`: the inode of each name before the
 * run. Returns false when a lost name cannot be brought back (a removed file with no other
 * name: its inode is gone from this simulation, though a real disk would still hold it).
 */
export function rollBackFolders(calls: readonly Call[], root: string, inodes: Map<string, number>): boolean {
  const syncedAfter = (dir: string, op: Call) => calls.some((c) => isSync(c) && fdPath(c) === dir && c.start > op.end);
  const ino = new Map(inodes);
  const gone = new Map<string, number>();
  const ops = nameOps(calls).filter((o) => o.from.startsWith(root));
  for (const o of ops) {
    const i = ino.get(o.from);
    if (o.kind === 'link' && i !== undefined && o.to) ino.set(o.to, i);
    if (o.kind === 'rename' && i !== undefined && o.to) (ino.set(o.to, i), ino.delete(o.from));
    if (o.kind === 'unlink' && i !== undefined) (gone.set(o.from, i), ino.delete(o.from));
  }
  for (const o of [...ops].reverse()) {
    const dirs = [path.dirname(o.from), ...(o.to ? [path.dirname(o.to)] : [])];
    if (dirs.every((d) => syncedAfter(d, o.call))) continue;
    if (o.kind === 'link' && o.to) {
      fs.rmSync(o.to, { force: true });
      ino.delete(o.to);
    } else if (o.kind === 'rename' && o.to) {
      fs.renameSync(o.to, o.from);
      const i = ino.get(o.to);
      if (i !== undefined) (ino.set(o.from, i), ino.delete(o.to));
    } else if (o.kind === 'unlink') {
      const want = gone.get(o.from);
      const other = [...ino.entries()].find(([p, i]) => i === want && fs.existsSync(p))?.[0];
      if (other === undefined) return false;
      fs.linkSync(other, o.from);
      ino.set(o.from, want!);
    }
  }
  return true;
}
