/**
 * Settles one run: records its outcome with the claim token (complete, fail or release), then
 * runs the after-action of an outcome that is now committed and records where it left the file.
 * A claim the store reports taken over records nothing and touches nothing.
 */
import type { Logger } from 'pino';
import { type AfterAction, afterActionLabel, applyAfterAction } from './after-action.js';
import { GONE, logAfterActionError, wentAsPlanned } from './after-action-log.js';
import type { CompletionBatcher } from './completion-batcher.js';
import { type ChangedFile, changedAsync, changedInLine } from './file-checks.js';
import type { HandlerOutcome } from './handler-types.js';
import { type FailureOutcome, type ResolvedRunnerOptions, type Running, fileLabels } from './runner-options.js';

export class Settler {
  constructor(
    private readonly o: ResolvedRunnerOptions,
    private readonly batcher: CompletionBatcher,
  ) {}

  /** `readFingerprint`: the file as it was when the handler started. */
  async success(entry: Running, log: Logger, outcome: Extract<HandlerOutcome, { ok: true }>, readFingerprint: string, inLine: boolean): Promise<void> {
    const { claim } = entry;
    const stats = outcome.stats ?? { total: 0, filtered: 0, persisted: 0 };
    let res;
    try {
      res = await this.batcher.complete({
        fileUrl: claim.fileUrl,
        token: claim.token,
        now: this.o.now(),
        afterAction: afterActionLabel(entry.settings.onSuccess),
        fingerprint: readFingerprint,
        stats: { totalRows: stats.total, filteredRows: stats.filtered, persistedRows: stats.persisted, durationMs: outcome.durationMs },
      });
    } catch (err) {
      // Not recorded: the lease will run out and the file will be retried (at-least-once).
      log.error({ err, durationMs: outcome.durationMs }, 'handler succeeded but the outcome could not be recorded; the file will run again');
      return;
    }
    if (res === 'lost') {
      log.warn({ durationMs: outcome.durationMs }, 'handler succeeded but the claim was taken over; nothing recorded, nothing moved');
      this.o.onOutcome?.(claim.fileUrl, 'lost');
      return;
    }
    entry.settled = true;
    this.o.metrics?.completed?.(outcome.durationMs, fileLabels(claim, entry.folder), entry.identity?.size);
    // Did the file change while it was handled? Then its new content is a new version.
    const changed: ChangedFile | null = inLine ? changedInLine(claim.fileUrl, readFingerprint) : await changedAsync(claim.fileUrl, readFingerprint);
    const after = changed === null ? await this.afterAction(entry, entry.settings.onSuccess, log) : 'keep (changed while handled)';
    // Where the plan says (the recorded label tells it): nothing more to write, the common case.
    if (!wentAsPlanned(entry.settings.onSuccess, entry.folder?.dir, claim.fileUrl, after)) await this.recordAfterAction(entry, after, log);
    log.info(
      { outcome: 'completed', durationMs: outcome.durationMs, records: outcome.stats, afterAction: after },
      'completed',
    );
    this.o.onOutcome?.(claim.fileUrl, 'completed');
    if (changed !== null && this.o.rediscover) {
      await this.o.rediscover({ ...changed, fileType: claim.fileType }).catch((err: unknown) => log.warn({ err }, 'could not re-discover the changed file'));
    }
  }

  /**
   * `readFingerprint`: the file as the handler read it. A file rewritten between discovery and
   * the run fails under the content it has now; recorded with the claim's older look, that
   * content would come back from the watcher as a new version, be claimed once more and, moved
   * to dead/ meanwhile, be recorded "vanished" (60-second soak).
   */
  async failure(entry: Running, log: Logger, outcome: FailureOutcome, readFingerprint?: string): Promise<void> {
    const { claim } = entry;
    let res;
    try {
      res = await this.o.store.fail({
        fileUrl: claim.fileUrl,
        token: claim.token,
        error: outcome.error,
        permanent: outcome.permanent,
        now: this.o.now(),
        durationMs: outcome.durationMs,
        reason: outcome.permanent ? 'dead' : outcome.kind,
        deadAfterAction: afterActionLabel(entry.settings.onDead),
        ...(entry.settings.retry !== undefined ? { retry: entry.settings.retry } : {}),
        ...(readFingerprint !== undefined && readFingerprint !== claim.fingerprint ? { fingerprint: readFingerprint } : {}),
      });
    } catch (err) {
      log.error({ err, error: outcome.error }, 'handler failed and the failure could not be recorded; the file will run again');
      return;
    }
    if (res === 'lost') {
      log.warn({ error: outcome.error }, 'handler failed but the claim was taken over; nothing recorded');
      this.o.onOutcome?.(claim.fileUrl, 'lost');
      return;
    }
    entry.settled = true;
    this.o.metrics?.failed?.(outcome.permanent ? 'permanent' : outcome.kind, outcome.durationMs, fileLabels(claim, entry.folder));
    let after: string | undefined;
    if (res === 'dead') {
      // A file that is gone has nothing to move or delete.
      after = outcome.kind === 'vanished' ? GONE : await this.afterAction(entry, entry.settings.onDead, log);
      // Always kept for a dead file (rare): `ckpt retry --dead` brings it back from there.
      await this.recordAfterAction(entry, after, log);
    }
    const level = res === 'dead' ? 'error' : 'warn';
    const msg = res !== 'dead' ? 'failed; will retry' : outcome.permanent ? 'dead: permanent failure' : 'dead: no more retries';
    log[level]({ outcome: res, kind: outcome.kind, durationMs: outcome.durationMs, error: outcome.error, afterAction: after }, msg);
    this.o.onOutcome?.(claim.fileUrl, res);
  }

  /** `why` 'handler unavailable': logged at debug, the availability monitor says it once for all files. */
  async release(entry: Running, log: Logger, why: 'stopped' | 'handler unavailable'): Promise<void> {
    try {
      const [r] = await this.o.store.release([{ fileUrl: entry.claim.fileUrl, token: entry.claim.token }], this.o.now());
      log[why === 'stopped' ? 'info' : 'debug']({ outcome: r === 'ok' ? 'released' : 'lost' }, `${why}: file given back without counting an attempt`);
    } catch (err) {
      log.error({ err }, 'could not give the file back; its lease will run out and it will be retried');
    }
    this.o.onOutcome?.(entry.claim.fileUrl, 'released');
  }

  private async afterAction(entry: Running, action: AfterAction, log: Logger): Promise<string> {
    const { claim, folder } = entry;
    if (!folder) return 'keep (outside the watched folders)';
    try {
      return await applyAfterAction(action, claim.fileUrl, {
        root: folder.dir,
        readyMarker: folder.readyMarker,
        ...(entry.identity ? { identity: entry.identity } : {}),
      });
    } catch (err) {
      logAfterActionError(log, err);
      return `failed: ${(err as Error).message}`;
    }
  }

  /** Where the after-action left the file, on the attempt's history row; a failure only costs the detail. */
  private async recordAfterAction(entry: Running, done: string, log: Logger): Promise<void> {
    try {
      await this.o.store.recordAfterAction({ fileUrl: entry.claim.fileUrl, token: entry.claim.token, done });
    } catch (err) {
      log.warn({ error: (err as Error).message, afterAction: done }, 'could not record where the after-action left the file');
    }
  }
}
