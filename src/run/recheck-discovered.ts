/**
 * The last look before a file found ready goes to the store: is the path still holding exactly
 * the file that was found stable?
 *
 * Between the watcher's stability check and the store's discover, time can pass: a daemon
 * SIGSTOPped for a few seconds hands its queue over when it wakes, a failed hand-off is retried
 * after a back-off, a long start-up scan finishes late. Meanwhile another daemon may have
 * handled a newer content of the same name and moved it away. A stale fingerprint then reached
 * the store, which took it for a changed file and made a new version of a file that was no
 * longer there: it went dead as "vanished" while its content sat in done/ (the soak found 9 in
 * one 40-second run, all handed over by a daemon right after SIGCONT).
 *
 * Synchronous on purpose: the caller hands the survivors to the store in the same turn of the
 * event loop, so nothing runs between this look and the store's transaction (an asynchronous
 * look still let a daemon stopped in between make two such versions in a soak run). About
 * 5-10 us per file; discovery batches are small.
 *
 * A file whose path now holds something else (or nothing) is dropped: if it changed, the watcher
 * sees the change (an event, or the next rescan) and hands the new content on after its own
 * stable period.
 */
import fs from 'node:fs';
import { fingerprintOf } from '../file-identity.js';
import type { DiscoveredFile } from '../store/types.js';

export function stillAsFound(files: readonly DiscoveredFile[]): { fresh: DiscoveredFile[]; stale: DiscoveredFile[] } {
  const fresh: DiscoveredFile[] = [];
  const stale: DiscoveredFile[] = [];
  for (const f of files) {
    const st = fs.lstatSync(f.fileUrl, { throwIfNoEntry: false });
    if (st && st.isFile() && fingerprintOf(st) === f.fingerprint) fresh.push(f);
    else stale.push(f);
  }
  return { fresh, stale };
}
