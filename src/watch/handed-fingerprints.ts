/**
 * The fingerprint each path last had when the sink accepted it, so that a rescan does not hand
 * an unchanged file on again. Least recently seen first (a Map keeps insertion order): files
 * still present are refreshed by every rescan and stay; deleted ones age out.
 *
 * Why remember them at all, when store.discover is idempotent: a rescan of a folder holding
 * 100k processed files would otherwise put all 100k through stability (100k tracker slots,
 * i.e. the whole default bound, and a second stat each) and then through discover, every
 * rescanMs. Measured: 230 bytes of heap an entry (a 74-character path, a 36-character
 * fingerprint, the Map slot), so 250k entries are 55 MB at worst, and a folder of 100k handed
 * files costs 23 MB to rescan without re-sending it.
 */
export class HandedFingerprints {
  private readonly handed = new Map<string, string>();

  /** `max` 0: remember nothing. */
  constructor(private readonly max: number) {}

  /** `fp` is what was last handed for `p`; refreshes its place (it is still there). */
  isHanded(p: string, fp: string): boolean {
    const old = this.handed.get(p);
    if (old !== fp) return false;
    this.handed.delete(p);
    this.handed.set(p, fp);
    return true;
  }

  /** The same question without refreshing its place. */
  last(p: string): string | undefined {
    return this.handed.get(p);
  }

  remember(p: string, fp: string): void {
    if (this.max === 0) return;
    this.handed.delete(p);
    this.handed.set(p, fp);
    if (this.handed.size > this.max) {
      const oldest = this.handed.keys().next();
      if (oldest.done !== true) this.handed.delete(oldest.value);
    }
  }

  forget(p: string): void {
    this.handed.delete(p);
  }
}
