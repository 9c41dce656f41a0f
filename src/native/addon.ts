/**
 * ckpt's native part (native/ckpt_native.c, built by `npm ci` through scripts/build-native.mjs):
 * inotify with its event kinds, and posix_spawn. Loaded once; when it is missing, fails to
 * load, or CKPT_NATIVE=0 asks for the portable paths, callers get null and use fs.watch with
 * the stability timer and Node's spawn, and the first logger that asks says so once.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

/** An opaque handle (a poll on an inotify descriptor or a pidfd). */
export type NativeHandle = { readonly __native: unique symbol };

export interface NativeAddon {
  /**
   * `cb` gets each read of raw inotify_event records, or null when polling failed; `drained`:
   * the read left room for the longest record, so the kernel's queue was empty after it.
   */
  inotifyOpen(cb: (events: Buffer | null, drained?: boolean) => void): NativeHandle;
  inotifyAdd(h: NativeHandle, dir: string, mask: number): number;
  inotifyRemove(h: NativeHandle, wd: number): void;
  close(h: NativeHandle): void;
  ref(h: NativeHandle, on: boolean): void;
  /**
   * posix_spawn in a new process group, on a thread of libuv's pool; `cb` gets the error (with
   * `code`) or [pid, stdout read fd, stderr read fd]. Bad arguments (a NUL byte) are thrown.
   */
  spawnAsync(
    file: string,
    argv: string[],
    env: string[],
    cwd: string | null,
    pathVar: string | null,
    cb: (err: NodeJS.ErrnoException | null, started: [number, number, number] | null) => void,
  ): void;
  /** Calls `cb` once when `pid` (our child) exits, after reaping it. */
  watchExit(pid: number, cb: (code: number | null, signal: number | null) => void): NativeHandle;
}

export interface NativeStatus {
  addon: NativeAddon | null;
  /** Why it is not there (null when loaded). */
  reason: string | null;
}

/**
 * What ckpt calls. A build/ left from an older checkout (a `git pull` without `npm ci`) loads
 * fine but lacks a newer function, and every handler start would then fail: such an addon is
 * refused as a whole, and the portable paths are used.
 */
const REQUIRED = ['inotifyOpen', 'inotifyAdd', 'inotifyRemove', 'close', 'ref', 'spawnAsync', 'watchExit'] as const;

let status: NativeStatus | null = null;
let reported = false;

function load(): NativeStatus {
  const flag = process.env.CKPT_NATIVE;
  if (flag === '0' || flag === 'off' || flag === 'false') return { addon: null, reason: 'disabled by CKPT_NATIVE=0' };
  if (process.platform !== 'linux') return { addon: null, reason: `not built for ${process.platform}` };
  // src/native/ and dist/native/ both sit two levels below the package root.
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  try {
    const req = createRequire(import.meta.url);
    const addon = req(path.join(root, 'build', 'Release', 'ckpt_native.node')) as Record<string, unknown>;
    const missing = REQUIRED.filter((name) => typeof addon[name] !== 'function');
    if (missing.length > 0) {
      return { addon: null, reason: `is out of date (no ${missing.join(', ')}); rebuild it with \`npm run build:native\`` };
    }
    return { addon: addon as unknown as NativeAddon, reason: null };
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return { addon: null, reason: `could not be loaded (${msg}); build it with \`npm run build:native\`` };
  }
}

/** The addon, or null (see nativeStatus().reason). */
export function nativeAddon(): NativeAddon | null {
  return nativeStatus().addon;
}

export function nativeStatus(): NativeStatus {
  status ??= load();
  return status;
}

/** Says once per process, on the first logger that asks, that the portable paths are in use. */
export function reportNative(log: Logger): void {
  const s = nativeStatus();
  if (reported || s.addon !== null) return;
  reported = true;
  log.warn(
    { native: false, reason: s.reason },
    'native part not in use: files are judged ready by the stability timer only, and handlers are started with Node spawn',
  );
}
