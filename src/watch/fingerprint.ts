import type fs from 'node:fs';

/** The fields of fs.Stats that identify one version of one file. */
export type StatLike = Pick<fs.Stats, 'size' | 'mtimeMs' | 'dev' | 'ino'>;

/**
 * `size:mtimeMs:dev:ino`, the version identity the store keys reprocessing on. mtime is
 * truncated to whole milliseconds because that is what the store records (epoch ms); dev and ino
 * make a file renamed over an existing name (same size, same second) a new version.
 */
export function fingerprintOf(st: StatLike): string {
  return `${st.size}:${Math.trunc(st.mtimeMs)}:${st.dev}:${st.ino}`;
}

/**
 * True when two stats taken at least stableMs apart show the same file unchanged: same size,
 * same mtime (full precision, not truncated), same inode. An inode change means the name now
 * points at another file (renamed over), which must earn its own stable period.
 */
export function sameVersion(a: StatLike, b: StatLike): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev;
}
