/**
 * One look at the ledger for `ckpt top`: everything `ckpt status` reports (counts, the mode and
 * why, the processes and their heartbeats; the same rules, from status.ts), and what the store's
 * activity() adds: rates over short and long windows, the backlog by folder and file type, the
 * files in flight and the last failures.
 */
import { ageSeconds, errorSummary } from '../../ops/format.js';
import type { BacklogGroup, CheckpointStore, InFlightFile, RecentFailure } from '../../store/types.js';
import { type StatusInputs, type StatusJson, statusReportOf } from '../commands/status.js';

/**
 * The last few seconds (what is happening now) and the last minute (whether it is a blip). Five
 * seconds at one refresh a second: the short rate moves within a refresh or two, and a file a
 * second still reads as about 1/s rather than jumping between 0 and 2.
 */
export const RATE_WINDOWS_MS: readonly number[] = [5_000, 60_000];

/** Rows asked for per list: more than a terminal shows, so the JSON and a pipe get a real picture. */
export const LIST_LIMIT = 50;

export interface RateJson {
  windowMs: number;
  discovered: number;
  completed: number;
  failed: number;
  /** The counts divided by the window's seconds. */
  perSecond: { discovered: number; completed: number; failed: number };
}

export interface BacklogJson extends BacklogGroup {
  oldestPendingAgeSeconds: number | null;
}

export interface InFlightJson extends InFlightFile {
  elapsedSeconds: number | null;
}

export interface FailureJson extends RecentFailure {
  /** The error as one printable line (what the screen shows). */
  summary: string;
}

export interface TopJson extends StatusJson {
  rates: RateJson[];
  backlog: BacklogJson[];
  inFlight: InFlightJson[];
  failures: FailureJson[];
}

/** One refresh: one activity() call, which the stores answer in one read transaction. */
export async function topSnapshot(store: CheckpointStore, database: string | null, inputs: StatusInputs): Promise<TopJson> {
  const now = inputs.env.now;
  const act = await store.activity({ now, windowsMs: RATE_WINDOWS_MS, limit: LIST_LIMIT });
  const report = statusReportOf(act.stats, act.workers, database, inputs.env, inputs.states, inputs.handlerDown);
  const per = (n: number, ms: number) => Math.round((n / (ms / 1000)) * 1000) / 1000;
  return {
    ...report,
    rates: act.windows.map((w) => ({
      ...w,
      perSecond: { discovered: per(w.discovered, w.windowMs), completed: per(w.completed, w.windowMs), failed: per(w.failed, w.windowMs) },
    })),
    backlog: act.backlog.map((g) => ({ ...g, oldestPendingAgeSeconds: ageSeconds(g.oldestPendingAt, now) })),
    inFlight: act.inFlight.map((f) => ({ ...f, elapsedSeconds: ageSeconds(f.startedAt, now) })),
    failures: act.failures.map((f) => ({ ...f, summary: errorSummary(f.errorMessage ?? f.outcome, 500) })),
  };
}
