/**
 * Starting handler programs with posix_spawn from the native part (src/native/addon.ts), in
 * the daemon itself: glibc's posix_spawn starts the child with CLONE_VFORK, which shares the
 * daemon's memory until the exec instead of copying its page tables as Node's fork does, so
 * there is no per-run fork cost to move into a helper process (spawn-helper.ts). Measured in
 * scripts/bench (BENCHMARKS.md, command handler row).
 *
 * Same four reports as the other launchers, same semantics: the program leads its own process
 * group (POSIX_SPAWN_SETPGROUP), gets exactly `req.env`, stdin on /dev/null, stdout and stderr
 * on pipes whose last bytes are kept; at its exit whatever is left in its group is SIGKILLed,
 * and the pipes are given `drainMs` to reach EOF.
 */
import net from 'node:net';
import os from 'node:os';
import type { NativeAddon } from '../native/addon.js';
import { ByteTail, killGroup } from './process-group.js';
import { LEASE_PASSED, type LaunchEvents, type Launcher, type LaunchRequest } from './spawn-helper.js';

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** The environment as KEY=VALUE strings, as Node's spawn builds it (undefined values left out). */
function envPairs(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out.push(`${k}=${v}`);
  return out;
}

function readTail(fd: number, tail: ByteTail): net.Socket {
  const s = new net.Socket({ fd, readable: true, writable: false });
  s.on('data', (c: Buffer) => tail.push(c));
  s.on('error', () => undefined); // EOF or abandoned: 'close' follows
  return s;
}

/**
 * The start runs on a thread of libuv's pool (spawnAsync): posix_spawn holds its thread until
 * the child has exec'd, 0.5-1.5 ms for `true` on 2 busy cores, and on the event loop's thread
 * that made one start at a time (see docs/performance.md).
 */
export function nativeLauncher(addon: NativeAddon): Launcher {
  return (req: LaunchRequest, ev) => {
    if (req.notAfter !== undefined && Date.now() > req.notAfter) {
      ev.failed(Object.assign(new Error('not started: the lease ran out before the handler could start'), { code: LEASE_PASSED }));
      return;
    }
    try {
      addon.spawnAsync(req.program, [req.program, ...req.args], envPairs(req.env), req.cwd ?? null, req.env.PATH ?? null, (err, started) => {
        if (err !== null || started === null) ev.failed(err ?? new Error('spawn failed'));
        else follow(addon, req, ev, started);
      });
    } catch (err) {
      // Bad arguments (a NUL byte in a string) are thrown before anything is queued.
      ev.failed(err as NodeJS.ErrnoException);
    }
  };
}

/** A started child: its output tails, its exit, the cleanup of its group. */
function follow(addon: NativeAddon, req: LaunchRequest, ev: LaunchEvents, started: [number, number, number]): void {
  const [pid, outFd, errFd] = started;
  const out = new ByteTail(req.tailBytes);
  const err = new ByteTail(req.tailBytes);
  const streams = [readTail(outFd, out), readTail(errFd, err)];
  let open = streams.length;
  let exited = false;
  let abandoned = false;
  let drain: NodeJS.Timeout | undefined;
  const onClose = (): void => {
    if (--open > 0 || !exited) return;
    clearTimeout(drain);
    ev.closed({ bytes: out.bytes(), seen: out.seen }, { bytes: err.bytes(), seen: err.seen }, abandoned);
  };
  for (const s of streams) s.on('close', onClose);
  ev.spawned(pid);
  try {
    addon.watchExit(pid, (code, signo) => {
      exited = true;
      ev.exited(code, signo === null ? null : (signalNames.get(signo) ?? null), killGroup(pid, 'SIGKILL'));
      if (open === 0) {
        open = 1;
        onClose();
        return;
      }
      drain = setTimeout(() => {
        abandoned = true;
        for (const s of streams) s.destroy();
      }, req.drainMs);
    });
  } catch (e) {
    // No pidfd (a kernel before 5.3): the exit cannot be seen, so the run is stopped and ends
    // as killed rather than hanging; its pipes close with the group.
    ev.childError(e as Error);
    exited = true;
    ev.exited(null, 'SIGKILL', killGroup(pid, 'SIGKILL'));
    drain = setTimeout(() => {
      abandoned = true;
      for (const s of streams) s.destroy();
    }, req.drainMs);
  }
}
