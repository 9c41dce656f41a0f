/**
 * What the runner says about an after-action, in the log and in the history: one line per
 * failure, and the result recorded when the file did not go where the recorded plan says
 * (`ckpt retry` and `ckpt show` read it back, src/cli/where-moved.ts).
 */
import type { Logger } from 'pino';
import { AfterActionError, type AfterAction, afterActionLabel, moveTarget, movedTo, plannedMoveDir } from './after-action.js';

/** The after-action of a dead file that was gone before it was handled. */
export const GONE = 'none (the file was gone)';

/**
 * One line: a refusal or a file-system error says all there is in its message and code (a file
 * gone, a name too long); only an error nobody expected keeps its stack.
 */
export function logAfterActionError(log: Logger, err: unknown): void {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (err instanceof AfterActionError || typeof code === 'string') {
    log.error({ error: (err as Error).message, ...(code ? { code } : {}) }, 'after-action failed; the file stays where it is');
  } else {
    log.error({ err }, 'after-action failed; the file stays where it is');
  }
}

/**
 * True when `done` (what applyAfterAction reported) is what the plan alone tells: kept, deleted,
 * or moved under its own name into the destination. Only the rest needs a history write.
 */
export function wentAsPlanned(action: AfterAction, root: string | undefined, fileUrl: string, done: string): boolean {
  const dir = plannedMoveDir(afterActionLabel(action));
  if (dir === null) return done === 'keep' || done.startsWith('deleted');
  return root !== undefined && movedTo(done) === moveTarget(dir, root, fileUrl);
}
