/** The watch layer: finds completely written files in watched folders and hands them to a sink. */
export { FolderWatcher, type FolderWatcherOptions, type WatchFolder, type WatcherStats } from './watcher.js';
export { DEFAULT_IGNORES, compileFilter, type FileFilter, type FilterSpec } from './filter.js';
export { fingerprintOf, sameVersion, type StatLike } from '../file-identity.js';
export { isReady, judge, StabilityTracker, type Observation, type Verdict } from './readiness.js';
export { escapePath, scanTree, type ScanEntry } from './scan.js';
