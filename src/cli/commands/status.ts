/**
 * `ckpt status`: where things stand. Counts by status, the oldest waiting file, outcomes in the
 * last minute and hour, the mode (normal or degraded, since when, why) and the ckpt processes
 * with their last heartbeat. Everything comes through the CheckpointStore interface, so it
 * works the same for every store.
 */
import os from 'node:os';
import { pidExists } from '../../pid-exists.js';
import { isAlive } from '../../store/fallback/process-identity.js';
import { fallbackDirForConfig, readFallbackStates } from '../../store/open-store.js';
import type { ResolvedConfig } from '../../config/types.js';
import { ageSeconds, formatAgo, formatCount, formatDuration } from '../../ops/format.js';
import { formatKeyValues, formatTable } from '../../ops/table.js';
import { readHandlerStates } from '../../run/handler-state-file.js';
import { STATUSES, type CheckpointStore, type Status, type StoreStats, type WorkerRecord } from '../../store/types.js';
import { withStore } from '../context.js';
import { print, printJson } from '../output.js';

export type WorkerState = 'live' | 'stale' | 'gone';

export interface WorkerJson {
  workerId: string;
  host: string;
  pid: number;
  mode: string;
  modeSince: string | null;
  modeReason: string | null;
  startedAt: string;
  heartbeatAt: string;
  heartbeatAgeSeconds: number | null;
  /**
   * live: heartbeat fresh; stale: heartbeat old (hung, or on another host); gone: heartbeat old
   * and, on this host, no process with that pid.
   */
  state: WorkerState;
}

export interface StatusJson {
  /** The SQLite file; null for other stores (a URL may carry a password). */
  database: string | null;
  generatedAt: string;
  counts: Record<Status, number>;
  total: number;
  oldestPending: { since: string; ageSeconds: number | null } | null;
  lastMinute: { completed: number; failed: number };
  lastHour: { completed: number; failed: number };
  mode: { state: 'normal' | 'degraded'; since: string | null; reason: string | null; workers: string[] };
  /** Processes of this host whose handler program cannot be started (they claim nothing meanwhile). */
  handler: { available: boolean; unavailable: HandlerUnavailableJson[] };
  workers: WorkerJson[];
}

export interface HandlerUnavailableJson {
  workerId: string;
  since: string;
  program: string;
  why: string;
}

/**
 * A worker whose heartbeat is older than this is not counted as live: twice the lease (a
 * daemon renews leases well within one), and never less than a minute so a slow box under
 * load is not reported dead.
 */
export function staleAfterMs(leaseMs: number): number {
  return Math.max(60_000, 2 * leaseMs);
}

export interface StatusEnv {
  now: number;
  hostname: string;
  staleAfterMs: number;
  /** Whether a pid exists on this host. */
  pidAlive: (pid: number) => boolean;
}


function workerJson(w: WorkerRecord, env: StatusEnv): WorkerJson {
  const age = ageSeconds(w.heartbeatAt, env.now);
  let state: WorkerState = 'live';
  if (age === null || age * 1000 > env.staleAfterMs) {
    // A fresh heartbeat always wins over the pid check: another PID namespace (a container)
    // may share the hostname.
    state = w.host === env.hostname && !env.pidAlive(w.pid) ? 'gone' : 'stale';
  }
  return {
    workerId: w.workerId,
    host: w.host,
    pid: w.pid,
    mode: w.mode,
    modeSince: w.modeSince,
    modeReason: w.modeReason,
    startedAt: w.startedAt,
    heartbeatAt: w.heartbeatAt,
    heartbeatAgeSeconds: age,
    state,
  };
}

/** A live process's own word that it is degraded (its state file beside the database). */
export interface DegradedState {
  workerId: string;
  since: string | null;
  reason: string | null;
}

export async function statusReport(
  store: CheckpointStore,
  database: string | null,
  env: StatusEnv,
  stateFiles: readonly DegradedState[] = [],
  handlerDown: readonly HandlerUnavailableJson[] = [],
): Promise<StatusJson> {
  return statusReportOf(await store.stats(env.now), await store.workers(), database, env, stateFiles, handlerDown);
}

/** The report from what the store said (`ckpt top` reads stats and workers with the rest of a refresh). */
export function statusReportOf(
  stats: StoreStats,
  records: readonly WorkerRecord[],
  database: string | null,
  env: StatusEnv,
  stateFiles: readonly DegradedState[] = [],
  handlerDown: readonly HandlerUnavailableJson[] = [],
): StatusJson {
  const workers = records.map((w) => workerJson(w, env));
  // While the database is locked a degraded worker cannot write its row (it still says normal),
  // so its state file beside the database counts too.
  const degraded: DegradedState[] = workers
    .filter((w) => w.state === 'live' && w.mode === 'degraded')
    .map((w) => ({ workerId: w.workerId, since: w.modeSince, reason: w.modeReason }));
  for (const f of stateFiles) if (!degraded.some((d) => d.workerId === f.workerId)) degraded.push(f);
  const since = degraded.map((w) => w.since).filter((s): s is string => s !== null).sort()[0] ?? null;
  const reasons = [...new Set(degraded.map((w) => w.reason).filter((r): r is string => r !== null))];
  const counts = { ...stats.counts };
  return {
    database,
    generatedAt: new Date(env.now).toISOString(),
    counts,
    total: STATUSES.reduce((n, s) => n + counts[s], 0),
    oldestPending: stats.oldestPendingAt === null ? null : { since: stats.oldestPendingAt, ageSeconds: ageSeconds(stats.oldestPendingAt, env.now) },
    lastMinute: { completed: stats.completedLastMinute, failed: stats.failedLastMinute },
    lastHour: { completed: stats.completedLastHour, failed: stats.failedLastHour },
    mode: {
      state: degraded.length > 0 ? 'degraded' : 'normal',
      since,
      reason: reasons.length > 0 ? reasons.join('; ') : null,
      workers: degraded.map((w) => w.workerId),
    },
    handler: { available: handlerDown.length === 0, unavailable: [...handlerDown] },
    workers,
  };
}

/**
 * `where` names the database on the first line when `r.database` is null (PostgreSQL: host,
 * port, database and schema, never the URL).
 */
export function renderStatus(r: StatusJson, now: number, where: string | null = r.database): string {
  const out: string[] = [];
  const head: [string, string][] = [];
  if (where !== null) head.push(['database', where]);
  if (r.mode.state === 'degraded') {
    const since = r.mode.since === null ? '' : ` since ${r.mode.since} (${formatAgo(r.mode.since, now)})`;
    head.push(['mode', `DEGRADED${since}`]);
    if (r.mode.reason !== null) head.push(['why', r.mode.reason]);
    head.push(['workers', r.mode.workers.join(', ')]);
  } else {
    head.push(['mode', 'normal']);
  }
  for (const h of r.handler.unavailable) {
    head.push(['handler', `UNAVAILABLE since ${h.since} (${formatAgo(h.since, now)}) on ${h.workerId}: ${h.why}; claiming paused, retries kept`]);
  }
  out.push(formatKeyValues(head), '');

  out.push(
    formatTable(
      [{ header: 'STATUS' }, { header: 'FILES', align: 'right' }],
      [...STATUSES.map((s) => [s, formatCount(r.counts[s])]), ['total', formatCount(r.total)]],
    ),
    '',
  );

  const oldest =
    r.oldestPending === null
      ? 'none waiting'
      : `${formatDuration((r.oldestPending.ageSeconds ?? 0) * 1000)} (ready since ${r.oldestPending.since})`;
  out.push(
    formatKeyValues([
      ['oldest pending', oldest],
      ['last minute', `${formatCount(r.lastMinute.completed)} completed, ${formatCount(r.lastMinute.failed)} failed`],
      ['last hour', `${formatCount(r.lastHour.completed)} completed, ${formatCount(r.lastHour.failed)} failed`],
    ]),
    '',
  );

  if (r.workers.length === 0) {
    out.push('no ckpt process is registered with this database (is `ckpt run` running?)');
  } else {
    out.push(
      formatTable(
        [
          { header: 'WORKER' },
          { header: 'HOST' },
          { header: 'PID', align: 'right' },
          { header: 'MODE' },
          { header: 'STARTED' },
          { header: 'HEARTBEAT' },
          { header: 'STATE' },
        ],
        r.workers.map((w) => [w.workerId, w.host, String(w.pid), w.mode, formatAgo(w.startedAt, now), formatAgo(w.heartbeatAt, now), w.state]),
      ),
    );
  }
  return out.join('\n');
}

/** What a report needs besides the store: the clock, and the state files beside the database. */
export interface StatusInputs {
  env: StatusEnv;
  states: DegradedState[];
  handlerDown: HandlerUnavailableJson[];
}

/** Read afresh for each report (`ckpt top` calls it on every refresh). */
export function statusInputs(config: ResolvedConfig, now: number): StatusInputs {
  const env: StatusEnv = { now, hostname: os.hostname(), staleAfterMs: staleAfterMs(config.leaseMs), pidAlive: pidExists };
  const fallbackDir = fallbackDirForConfig(config.database, config.fallbackDir);
  const states: DegradedState[] =
    fallbackDir === null
      ? []
      : readFallbackStates(fallbackDir)
          .filter((f) => f.mode === 'degraded' && isAlive(f.owner))
          .map((f) => ({ workerId: f.workerId, since: f.since === null ? null : new Date(f.since).toISOString(), reason: f.reason }));
  const handlerDown: HandlerUnavailableJson[] =
    fallbackDir === null
      ? []
      : readHandlerStates(fallbackDir).map((h) => ({ workerId: h.workerId, since: new Date(h.since).toISOString(), program: h.program, why: h.why }));
  return { env, states, handlerDown };
}

export async function statusCommand(config: ResolvedConfig, opts: { json?: boolean }): Promise<number> {
  const now = Date.now();
  const database = config.database.kind === 'sqlite' ? config.database.path : null;
  const { env, states, handlerDown } = statusInputs(config, now);
  const report = await withStore(config, (store) => statusReport(store, database, env, states, handlerDown));
  if (opts.json) printJson(report);
  else print(renderStatus(report, now, database ?? (await postgresLabel(config))));
  return 0;
}

/** `postgres host:port/db, schema S`: safe to print (no user, password or parameters). */
export async function postgresLabel(config: ResolvedConfig): Promise<string | null> {
  if (config.database.kind !== 'postgres') return null;
  const { describeTarget } = await import('../../store/postgres/pool.js');
  return `${describeTarget(config.database.url)}, schema ${config.database.schema}`;
}
