/**
 * systemd readiness (config/ckpt.service has Type=notify, NotifyAccess=all).
 *
 * Node cannot send a datagram on a unix socket, so the message goes through the
 * `systemd-notify` program, a child in the service's cgroup (hence NotifyAccess=all). Since
 * systemd 246 it waits until the manager has read the message (a barrier), so the notification
 * is not lost when the short-lived sender exits first.
 *
 * Outside systemd (NOTIFY_SOCKET unset) nothing runs. Never throws: a missing program or a
 * failed send is logged; systemd then fails the start after TimeoutStartSec, which says more
 * than a crash here would.
 */
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

function notify(logger: Logger, args: readonly string[], what: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (!env.NOTIFY_SOCKET) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      const child = spawn('systemd-notify', [...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < 2_000) stderr += d.toString();
      });
      child.on('error', (err) => {
        logger.warn({ err }, `could not tell systemd ${what}: systemd-notify did not start`);
        resolve(false);
      });
      child.on('close', (code) => {
        if (code === 0) {
          logger.debug(`told systemd ${what}`);
          resolve(true);
        } else {
          logger.warn({ code, stderr: stderr.trim() }, `systemd-notify failed telling systemd ${what}`);
          resolve(false);
        }
      });
    } catch (err) {
      logger.warn({ err }, `could not tell systemd ${what}`);
      resolve(false);
    }
  });
}

/**
 * Call once the database is open and the first scan is done. Resolves to whether systemd was
 * told (false outside systemd); callers need not await it.
 */
export function notifyReady(logger: Logger, status?: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  return notify(logger, ['--ready', ...(status === undefined ? [] : [`--status=${status}`])], 'ready', env);
}

/** Call when shutdown begins, so `systemctl status` shows "deactivating" with the reason. */
export function notifyStopping(logger: Logger, status?: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  return notify(logger, ['STOPPING=1', ...(status === undefined ? [] : [`STATUS=${status}`])], 'stopping', env);
}
