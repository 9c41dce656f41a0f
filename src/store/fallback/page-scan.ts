import fs from 'node:fs';

/**
 * Reads table rows straight out of SQLite's file format, page by page, without the b-tree:
 * every table-leaf and index-leaf page of the database file and of its -wal is decoded on its
 * own, so a destroyed header, a bad interior page or a missing second half of the file costs
 * only the pages that are really gone. (The Debian sqlite3 shell's `.recover` would do this,
 * but it lacks sqlite_dbpage here; `.dump` salvaged 0 rows with exit code 0 when the header
 * was overwritten.)
 *
 * The caller decides which records are which table's by their shape (column count and types)
 * and which copy of a row is newest: free pages and old WAL frames hold stale copies too.
 *
 * Format reference: https://www.sqlite.org/fileformat2.html (b-tree pages, cells, records,
 * overflow pages, WAL frames).
 */

export type SqlValue = null | number | bigint | string | Buffer;

export interface ScannedRecord {
  /** Table-leaf cells have a rowid; index-leaf cells (WITHOUT ROWID tables, indexes) do not. */
  rowid: number | null;
  values: SqlValue[];
  /** 'db' page number or 'wal' frame index: where it was found (for tests and logs). */
  source: 'db' | 'wal';
  /**
   * Write order of the copy, higher is newer: 0 for the database file; 1 + the frame's index
   * for a committed frame of the WAL's current generation (newer than anything checkpointed);
   * -1 for a frame of an older generation (checkpointed long ago) or after the last commit.
   * Copies of one row with the same order (a live page and a free one) need another tie-break.
   */
  order: number;
}

const HEADER_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
const PAGE_SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
const LEAF_TABLE = 0x0d;
const LEAF_INDEX = 0x0a;
const INTERIOR_TABLE = 0x05;
const INTERIOR_INDEX = 0x02;

export function hasValidHeader(buf: Buffer): boolean {
  return buf.length >= 100 && buf.subarray(0, 16).equals(HEADER_MAGIC);
}

/** Page size from a valid header, else guessed from where b-tree page headers line up. */
export function pageSizeOf(buf: Buffer): number {
  if (hasValidHeader(buf)) {
    const v = buf.readUInt16BE(16);
    const ps = v === 1 ? 65536 : v;
    if (PAGE_SIZES.includes(ps)) return ps;
  }
  return guessPageSize(buf);
}

/**
 * For each candidate size, count page starts that look like a b-tree page header (a known
 * type byte, a cell count and a content offset that fit the page). ckpt creates its files with
 * SQLite's default of 4096, which wins ties.
 */
export function guessPageSize(buf: Buffer): number {
  let best = 4096;
  let bestScore = -1;
  for (const ps of PAGE_SIZES) {
    const pages = Math.floor(buf.length / ps);
    if (pages < 2) continue;
    let score = 0;
    for (let p = 1; p < pages; p++) if (looksLikeBtreePage(buf, p * ps, ps)) score++;
    const ratio = score / (pages - 1);
    if (ratio > bestScore + 1e-9 || (Math.abs(ratio - bestScore) < 1e-9 && ps === 4096)) {
      best = ps;
      bestScore = ratio;
    }
  }
  return best;
}

function looksLikeBtreePage(buf: Buffer, off: number, ps: number): boolean {
  const t = buf[off];
  if (t !== LEAF_TABLE && t !== LEAF_INDEX && t !== INTERIOR_TABLE && t !== INTERIOR_INDEX) return false;
  const n = buf.readUInt16BE(off + 3);
  const content = buf.readUInt16BE(off + 5) || 65536;
  const hdr = t === LEAF_TABLE || t === LEAF_INDEX ? 8 : 12;
  return hdr + 2 * n <= content && content <= ps;
}

/** Every record on every leaf page of a database file image (and optionally its WAL). */
/**
 * `accept(columns)`: decode only records with a column count the caller cares about (decoding
 * every text value of every index entry cost most of the scan's time).
 */
export function scanRecords(db: Buffer, wal: Buffer | null, pageSizeHint?: number, accept: (columns: number) => boolean = () => true): ScannedRecord[] {
  const ps = pageSizeHint ?? pageSizeOf(db);
  const reserved = hasValidHeader(db) ? db[20] ?? 0 : 0;
  const usable = ps - reserved;
  const out: ScannedRecord[] = [];
  const pages = Math.floor(db.length / ps);
  const getPage = (n: number): Buffer | null => {
    if (n < 1 || n > pages) return null;
    return db.subarray((n - 1) * ps, n * ps);
  };
  for (let p = 1; p <= pages; p++) {
    const page = db.subarray((p - 1) * ps, p * ps);
    decodePage(page, p === 1 ? 100 : 0, usable, getPage, 'db', 0, out, accept);
  }
  if (wal && wal.length > 32) {
    const walPs = wal.readUInt32BE(8);
    if (walPs === ps) {
      const current = currentFrames(wal, ps);
      for (let i = 0, off = 32; off + 24 + ps <= wal.length; i++, off += 24 + ps) {
        const pgno = wal.readUInt32BE(off);
        if (pgno === 0) continue;
        const page = wal.subarray(off + 24, off + 24 + ps);
        decodePage(page, pgno === 1 ? 100 : 0, usable, getPage, 'wal', i < current ? 1 + i : -1, out, accept);
      }
    }
  }
  return out;
}

/**
 * How many frames at the start of the WAL are committed frames of its current generation: the
 * frames carry the header's salts up to the last one with a commit mark (a non-zero database
 * size). A WAL is rewritten from its start after a checkpoint, so frames past those belong to an
 * older generation, already in the database file, or to a transaction that never committed.
 */
function currentFrames(wal: Buffer, ps: number): number {
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let committed = 0;
  for (let i = 0, off = 32; off + 24 + ps <= wal.length; i++, off += 24 + ps) {
    if (wal.readUInt32BE(off + 8) !== salt1 || wal.readUInt32BE(off + 12) !== salt2) break;
    if (wal.readUInt32BE(off + 4) !== 0) committed = i + 1;
  }
  return committed;
}

function decodePage(
  page: Buffer,
  hdrOff: number,
  usable: number,
  getPage: (n: number) => Buffer | null,
  source: 'db' | 'wal',
  order: number,
  out: ScannedRecord[],
  accept: (columns: number) => boolean,
): void {
  const type = page[hdrOff];
  if (type !== LEAF_TABLE && type !== LEAF_INDEX) return;
  const nCells = page.readUInt16BE(hdrOff + 3);
  if (hdrOff + 8 + 2 * nCells > page.length) return;
  for (let i = 0; i < nCells; i++) {
    const ptr = page.readUInt16BE(hdrOff + 8 + 2 * i);
    if (ptr < hdrOff + 8 || ptr >= usable) continue;
    try {
      decodeCell(page, ptr, type, usable, getPage, accept, source, order, out);
    } catch {
      // a damaged cell: skip it, keep the rest of the page
    }
  }
}

function decodeCell(
  page: Buffer,
  ptr: number,
  type: number,
  usable: number,
  getPage: (n: number) => Buffer | null,
  accept: (columns: number) => boolean,
  source: 'db' | 'wal',
  order: number,
  out: ScannedRecord[],
): void {
  let pos = ptr;
  const P = varint(page, pos);
  pos += varintLength;
  let rowid: number | null = null;
  if (type === LEAF_TABLE) {
    rowid = varint(page, pos);
    pos += varintLength;
  }
  if (P <= 0 || P > 1 << 30) return;
  // How much of the payload is on this page (fileformat2 "Cell Payload Overflow Pages").
  const X = type === LEAF_TABLE ? usable - 35 : Math.floor(((usable - 12) * 64) / 255) - 23;
  let values: SqlValue[] | null;
  if (P <= X) {
    if (pos + P > page.length) return;
    // Offsets into the page, no subarray: a view per cell kept the garbage collector busy for
    // most of the scan (measured: 9 s of GC for 40k records).
    values = decodeRecord(page, accept, pos, pos + P);
  } else {
    const M = Math.floor(((usable - 12) * 32) / 255) - 23;
    const K = M + ((P - M) % (usable - 4));
    const local = K <= X ? K : M;
    if (pos + local + 4 > page.length) return;
    const parts = [page.subarray(pos, pos + local)];
    let have = local;
    let next = page.readUInt32BE(pos + local);
    let hops = 0;
    while (have < P && next !== 0 && hops++ < 100_000) {
      const ov = getPage(next);
      if (!ov) return;
      const take = Math.min(P - have, usable - 4);
      parts.push(ov.subarray(4, 4 + take));
      have += take;
      next = ov.readUInt32BE(0);
    }
    if (have < P) return;
    const payload = Buffer.concat(parts);
    values = decodeRecord(payload, accept, 0, payload.length);
  }
  if (values) out.push({ rowid, values, source, order });
}

/** Decode the record in `p[start, end)`; null when it is not a well-formed record (or not accepted). */
export function decodeRecord(
  p: Buffer,
  accept: (columns: number) => boolean = () => true,
  start = 0,
  end = p.length,
): SqlValue[] | null {
  const H = varint(p, start);
  if (H < 1 || start + H > end) return null;
  const types: number[] = [];
  let pos = start + varintLength;
  while (pos < start + H) {
    types.push(varint(p, pos));
    pos += varintLength;
  }
  if (pos !== start + H || !accept(types.length)) return null;
  const values: SqlValue[] = [];
  let off = start + H;
  for (const t of types) {
    const len = serialLength(t);
    if (len < 0 || off + len > end) return null;
    values.push(serialValue(p, off, t, len));
    off += len;
  }
  return off === end ? values : null;
}

function serialLength(t: number): number {
  if (t <= 4) return [0, 1, 2, 3, 4][t]!;
  if (t === 5) return 6;
  if (t === 6 || t === 7) return 8;
  if (t === 8 || t === 9) return 0;
  if (t === 10 || t === 11) return -1;
  return t % 2 === 0 ? (t - 12) / 2 : (t - 13) / 2;
}

function serialValue(p: Buffer, off: number, t: number, len: number): SqlValue {
  switch (t) {
    case 0:
      return null;
    case 1:
      return p.readInt8(off);
    case 2:
      return p.readInt16BE(off);
    case 3:
      return p.readIntBE(off, 3);
    case 4:
      return p.readInt32BE(off);
    case 5:
      return p.readIntBE(off, 6);
    case 6: {
      const v = p.readBigInt64BE(off);
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 7:
      return p.readDoubleBE(off);
    case 8:
      return 0;
    case 9:
      return 1;
    default:
      return t % 2 === 0 ? Buffer.from(p.subarray(off, off + len)) : p.toString('utf8', off, off + len);
  }
}

/**
 * SQLite's big-endian varint: 1-9 bytes, 7 bits each, the ninth byte all 8. As a JS number:
 * exact up to 2^53, which covers every size, serial type and rowid ckpt produces (a BigInt per
 * varint made the scan several times slower).
 */
export function readVarint(buf: Buffer, pos: number): [number, number] {
  const v = varint(buf, pos);
  return [v, varintLength];
}

/** Length in bytes of the varint last read by varint() (no tuple per call: this runs millions of times). */
let varintLength = 0;

function varint(buf: Buffer, pos: number): number {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    const b = buf[pos + i];
    if (b === undefined) throw new RangeError('varint past the end');
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      varintLength = i + 1;
      return v;
    }
  }
  const b = buf[pos + 8];
  if (b === undefined) throw new RangeError('varint past the end');
  varintLength = 9;
  return v * 256 + b;
}

/** Read a file whole, or null when it does not exist. */
export function readIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
