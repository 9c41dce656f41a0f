/**
 * The worker's row: each process records that it is alive, in which mode and since when, so
 * that `ckpt status` lists live workers (and the metrics say whether this one is degraded).
 */
import type { Logger } from 'pino';
import type { Metrics } from '../ops/metrics.js';
import type { ModeInfo } from '../store/open-store.js';
import type { CheckpointStore } from '../store/types.js';

/** How often a process records that it is alive. */
const WORKER_HEARTBEAT_MS = 5_000;

export interface HeartbeatDeps {
  store: CheckpointStore;
  workerId: string;
  host: string;
  mode: () => ModeInfo;
  metrics: Metrics | null;
  log: Logger;
}

export interface Heartbeat {
  /** Stops beating; the row stays until removeWorker. */
  stop(): void;
}

/** Records the worker once (awaited), then every WORKER_HEARTBEAT_MS. */
export async function startHeartbeat(deps: HeartbeatDeps): Promise<Heartbeat> {
  const { store, workerId, host, mode, metrics, log } = deps;
  const touch = () => {
    const m = mode();
    metrics?.setDegraded(m.mode === 'degraded');
    return store
      .touchWorker({ workerId, host, pid: process.pid, mode: m.mode, modeSince: m.since, modeReason: m.reason }, Date.now())
      .then(() => metrics?.heartbeat(Date.now()))
      .catch((err: unknown) => log.debug({ err }, 'could not record worker heartbeat'));
  };
  await touch();
  const timer = setInterval(() => void touch(), WORKER_HEARTBEAT_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
