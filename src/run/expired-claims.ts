/**
 * Claims whose lease ran out, as the store's lease sweep hands them over inside the claim
 * transaction: orphaned handlers of this host are killed before anyone runs the file again, and
 * files the sweep declared dead get the dead after-action once the claim has committed.
 */
import type { ExpiredClaim } from '../store/types.js';
import { type AfterAction, applyAfterAction } from './after-action.js';
import { logAfterActionError } from './after-action-log.js';
import { folderOf } from './folders.js';
import { killOrphanedHandler } from './orphans.js';
import type { ResolvedRunnerOptions, RunnerFolder } from './runner-options.js';

export class ExpiredClaims {
  /** Went dead in the sweep of the claim in flight; their after-action waits for its commit. */
  private readonly dead: ExpiredClaim[] = [];

  constructor(
    private readonly o: ResolvedRunnerOptions,
    /** The onDead of the route of a folder's files. */
    private readonly onDeadOf: (folder: RunnerFolder) => AfterAction,
  ) {}

  /**
   * Inside the claim transaction: claims whose lease ran out. A command handler of a dead
   * worker on this host may still run in its own process group; it must be gone before anyone
   * runs the file again. (Workers on other hosts cannot be checked: the lease and the token
   * are the protection there.)
   */
  takeOver(expired: readonly ExpiredClaim[]): void {
    this.o.metrics?.leaseTakeovers?.(expired.length);
    for (const e of expired) {
      if (e.status === 'dead') this.dead.push(e);
      const local = e.workerId !== null && e.workerId.startsWith(`${this.o.host}:`);
      let killed = 0;
      if (local) {
        try {
          killed = killOrphanedHandler(e.handlerPid, e.token).killed;
        } catch (err) {
          this.o.logger.error({ path: e.fileUrl, attempt: e.attempt, workerId: this.o.workerId, err }, 'could not check for an orphaned handler');
        }
      }
      this.o.logger.warn(
        { path: e.fileUrl, attempt: e.attempt, workerId: this.o.workerId, previousWorker: e.workerId, orphansKilled: killed, status: e.status },
        'took over an expired claim',
      );
    }
  }

  /**
   * Files that went dead in a lease sweep (their worker died on the last attempt) get onDead
   * like any other dead file; the sweep committed first, so this runs after the outcome.
   */
  afterClaim(): void {
    for (const e of this.dead.splice(0)) {
      const folder = folderOf(e.fileUrl, this.o.folders);
      if (!folder) continue;
      const log = this.o.logger.child({ path: e.fileUrl, attempt: e.attempt, workerId: this.o.workerId });
      applyAfterAction(this.onDeadOf(folder), e.fileUrl, { root: folder.dir, readyMarker: folder.readyMarker })
        .then(
          (done) => {
            log.error({ outcome: 'dead', afterAction: done }, 'dead: its worker died on the last attempt');
            return done;
          },
          (err: unknown) => {
            logAfterActionError(log, err);
            return `failed: ${(err as Error).message}`;
          },
        )
        .then((done) => this.o.store.recordAfterAction({ fileUrl: e.fileUrl, token: e.token, done }))
        .catch((err: unknown) => log.warn({ error: (err as Error).message }, 'could not record where the after-action left the file'));
    }
  }
}
