/**
 * File identity: which version of which file a name held. Every layer uses it (the watcher
 * hands a version on, the stores key reprocessing on it, the runner and `ckpt retry` check a
 * file is still the one recorded), so it lives here, at the base, with no imports of its own.
 *
 * The stored form is the fingerprint `size:mtimeMs:dev:ino`. It is written by fingerprintOf
 * and read back by parseFingerprint, both below: no other file splits a fingerprint.
 */
import type fs from 'node:fs';

/** The fields of fs.Stats that identify one version of one file. */
export type StatLike = Pick<fs.Stats, 'size' | 'mtimeMs' | 'dev' | 'ino'>;

/** One version of one file as the store records it: mtime in whole milliseconds. */
export interface FileIdentity {
  size: number;
  mtimeMs: number;
  dev: number;
  ino: number;
}

/** The identity of the file `st` describes (what fingerprintOf writes, as data). */
export function identityOf(st: StatLike): FileIdentity {
  return { size: st.size, mtimeMs: Math.trunc(st.mtimeMs), dev: st.dev, ino: st.ino };
}

/**
 * `size:mtimeMs:dev:ino`, the version identity the store keys reprocessing on. mtime is
 * truncated to whole milliseconds because that is what the store records (epoch ms); dev and ino
 * make a file renamed over an existing name (same size, same second) a new version.
 */
export function fingerprintOf(st: StatLike): string {
  return `${st.size}:${Math.trunc(st.mtimeMs)}:${st.dev}:${st.ino}`;
}

/**
 * The identity a fingerprint written by fingerprintOf records. Undefined for any other string:
 * a claim made through the library records its caller's version, or `unversioned` without one
 * (src/checkpoint-manager.ts), and neither names a file on disk.
 */
export function parseFingerprint(fingerprint: string): FileIdentity | undefined {
  const parts = fingerprint.split(':');
  if (parts.length !== 4 || parts.some((p) => p === '')) return undefined;
  const [size, mtimeMs, dev, ino] = parts.map(Number) as [number, number, number, number];
  if (![size, mtimeMs, dev, ino].every(Number.isFinite)) return undefined;
  return { size, mtimeMs, dev, ino };
}

/** True when `st` shows the version `id` records (mtime compared in whole milliseconds). */
export function isVersion(st: StatLike, id: FileIdentity): boolean {
  return st.dev === id.dev && st.ino === id.ino && st.size === id.size && Math.trunc(st.mtimeMs) === id.mtimeMs;
}

/**
 * True when two stats taken at least stableMs apart show the same file unchanged: same size,
 * same mtime (full precision, not truncated), same inode. An inode change means the name now
 * points at another file (renamed over), which must earn its own stable period.
 */
export function sameVersion(a: StatLike, b: StatLike): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev;
}
