/**
 * The after-action label in `after_action` (a seed column, so it stays text): what the outcome
 * planned ("keep", "delete", "move:/dir"), and after a takeover who redid it:
 * "move:/done (redone by host:12 at 2026-...)". This module is the only one that writes the
 * takeover suffix and the only one that reads it back.
 */

const REDONE = / \(redone by (\S+) at [^)]*\)$/;

/**
 * A label that moves or deletes the file, whether or not someone took it over. Such an outcome
 * must be on disk before the file leaves its folder. As an unfinished label: the runner takes it
 * only when the worker named last is gone, so a taker that died before finishing is taken over
 * in turn.
 */
export function takesFileAway(label: string | null): boolean {
  return label !== null && (label === 'delete' || label.startsWith('move:'));
}

/** The label a takeover writes: the planned action, and who redid it when. */
export function redoneLabel(label: string, workerId: string, atIso: string): string {
  return `${splitAfterActionLabel(label).base} (redone by ${workerId} at ${atIso})`;
}

/**
 * `move:/done (redone by host:12 at 2026-...)` -> base `move:/done`, redoneBy `host:12`; a label
 * nobody took over -> redoneBy null.
 */
export function splitAfterActionLabel(label: string): { base: string; redoneBy: string | null } {
  const m = REDONE.exec(label);
  return m ? { base: label.slice(0, m.index), redoneBy: m[1]! } : { base: label, redoneBy: null };
}
