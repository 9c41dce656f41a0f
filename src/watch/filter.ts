/**
 * Which names in a watched folder are data files. Pure functions of a path relative to the
 * watched folder, so the scanner, the chokidar `ignored` callback and the unit tests all use
 * the same rules.
 *
 * chokidar 5 dropped glob support (docs/stack-behaviour.md: a glob path gives no events and no error), so
 * globs are matched here with picomatch.
 */
import picomatch from 'picomatch';

/**
 * Names that are still being written or are not data, never handed on whatever the include
 * globs say. Matched case-insensitively against EVERY segment of the relative path, so a
 * staging folder (`.incoming/x.csv`, then renamed into place) is skipped as a whole.
 *
 * - `.*`          dotfiles: rsync (`.x.csv.AbC123`), editors, `.nfs*` silly-renames on NFS
 * - `*.tmp`, `*.part`, `*.partial`, `*.crdownload` (Chrome), `*.filepart` (WinSCP): downloads
 *   and uploads in flight, renamed to their final name when complete
 * - `*.swp`, `*~`: editor swap and backup files
 */
export const DEFAULT_IGNORES: readonly string[] = Object.freeze([
  '.*',
  '*.tmp',
  '*.part',
  '*.partial',
  '*.crdownload',
  '*.filepart',
  '*.swp',
  '*~',
]);

/** The subset of a watched folder's settings that decides which names are data. */
export interface FilterSpec {
  /** Globs a data file must match (any of them); empty means every name. */
  include: readonly string[];
  /** Globs that exclude a name even if it is included. */
  exclude: readonly string[];
  /** Suffix of the marker file that says "the data file beside me is complete" (".done"). */
  readyMarker: string | null;
}

export interface FileFilter {
  /** True when `rel` (relative to the watched folder, `/`-separated) names a data file. */
  isDataFile(rel: string): boolean;
  /** When `rel` is a ready-marker for a data file, the data file's relative path; else null. */
  markerTarget(rel: string): string | null;
  /**
   * True when nothing at or below `rel` can ever be a data file or a marker (a default-ignored
   * segment such as `.staging`), so a directory there need not be watched or scanned.
   */
  isPruned(rel: string): boolean;
}

const defaultIgnored = picomatch(DEFAULT_IGNORES as string[], { dot: true, nocase: true });

/**
 * A glob without a `/` (`*.csv`) matches the file's name at any depth, the way people expect
 * of a drop folder; a glob with a `/` (`in/*.csv`, `**\/x/*.csv`) matches the whole relative path.
 */
function compileGlobs(globs: readonly string[]): (rel: string) => boolean {
  const matchers = globs.map((g) => picomatch(g, { dot: true, basename: !g.includes('/') }));
  return (rel) => matchers.some((m) => m(rel));
}

function segmentIgnored(rel: string): boolean {
  for (const seg of rel.split('/')) {
    if (seg !== '' && defaultIgnored(seg)) return true;
  }
  return false;
}

export function compileFilter(spec: FilterSpec): FileFilter {
  const included = spec.include.length === 0 ? () => true : compileGlobs(spec.include);
  const excluded = spec.exclude.length === 0 ? () => false : compileGlobs(spec.exclude);
  const marker = spec.readyMarker !== null && spec.readyMarker !== '' ? spec.readyMarker : null;

  const isMarkerName = (rel: string): boolean =>
    marker !== null && rel.endsWith(marker) && rel.length > marker.length && !rel.endsWith(`/${marker}`);

  const isDataFile = (rel: string): boolean => {
    if (rel === '' || segmentIgnored(rel)) return false;
    // A marker is never data, even when it also matches the include globs (`*` would).
    if (isMarkerName(rel)) return false;
    return included(rel) && !excluded(rel);
  };

  return {
    isDataFile,
    markerTarget(rel) {
      if (!isMarkerName(rel) || marker === null) return null;
      const target = rel.slice(0, -marker.length);
      return isDataFile(target) ? target : null;
    },
    isPruned(rel) {
      return rel !== '' && segmentIgnored(rel);
    },
  };
}
