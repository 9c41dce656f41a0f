/**
 * One claimed file's run: check the file, run the handler under the claim's settings, and hand
 * the outcome to the settler. A claim lost while the handler ran records nothing; a run stopped
 * by shutdown, or a handler whose program is gone, gives the file back without an attempt.
 */
import type { Logger } from 'pino';
import type { ClaimRef } from '../store/types.js';
import { type CheckResult, checkFileAsync, checkFileInLine } from './file-checks.js';
import type { CheckPlacement } from './folders.js';
import type { HandlerOutcome } from './handler-types.js';
import { type ResolvedRunnerOptions, type Running, claimLog } from './runner-options.js';
import type { Settler } from './settle.js';

export interface RunOneContext {
  o: ResolvedRunnerOptions;
  placement: CheckPlacement;
  settle: Settler;
  /** Times every run (from the checks to the handler's return) for the claim-ahead average. */
  noteRunMs: (ms: number, fileType: string) => void;
}

export async function runOne(entry: Running, ctx: RunOneContext): Promise<void> {
  const { o, settle } = ctx;
  const { claim } = entry;
  const log = claimLog(o.logger, claim, o.workerId);
  const started = o.now();

  const folder = entry.folder;
  const inLine = ctx.placement.checksInLine(folder);
  const checked: CheckResult = inLine ? checkFileInLine(claim.fileUrl, folder?.dir) : await checkFileAsync(claim.fileUrl, folder?.dir);
  if (!('error' in checked)) entry.identity = checked.identity;
  if ('error' in checked) {
    await settle.failure(entry, log, {
      ok: false,
      permanent: checked.permanent,
      kind: checked.reason,
      error: checked.error,
      durationMs: o.now() - started,
    });
    return;
  }

  const outcome = await callHandler(entry, o, log);
  ctx.noteRunMs(o.now() - started, claim.fileType);

  if (entry.abortedFor === 'lease') {
    log.warn({ outcome: outcome.ok ? 'completed' : outcome.kind }, 'claim was taken over while the handler ran; its outcome is not recorded');
    o.onOutcome?.(claim.fileUrl, 'lost');
    return;
  }
  if (!outcome.ok && (entry.abortedFor === 'shutdown' || outcome.kind === 'unavailable')) {
    // Stopped by us, or the program is gone (not the file's fault): give the file back
    // without counting an attempt.
    await settle.release(entry, log, entry.abortedFor === 'shutdown' ? 'stopped' : 'handler unavailable');
    return;
  }
  if (outcome.ok) await settle.success(entry, log, outcome, checked.fingerprint, inLine);
  else await settle.failure(entry, log, outcome, checked.fingerprint);
}

/** The handler, with the claim's settings, its abort signal, and its pid recorded on the row. */
function callHandler(entry: Running, o: ResolvedRunnerOptions, log: Logger): Promise<HandlerOutcome> {
  const { claim } = entry;
  const ref: ClaimRef = { fileUrl: claim.fileUrl, token: claim.token };
  return entry.settings.handler({
    fileUrl: claim.fileUrl,
    fileType: claim.fileType,
    version: claim.version,
    attempt: claim.attempt,
    workerId: o.workerId,
    idempotencyKey: claim.idempotencyKey,
    claimToken: claim.token,
    signal: entry.ac.signal,
    logger: log,
    // The lease as it stands now, on the wall clock the launcher reads (o.now may be a test clock).
    startBy: Date.now() + (entry.leaseEndsAt - o.now()),
    onSpawn: (pid) => {
      o.store.setHandlerPid(ref, pid).catch((err: unknown) => log.warn({ err }, 'could not record the handler pid'));
    },
  });
}
