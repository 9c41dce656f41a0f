/**
 * The command handler: one program run per file, with child_process.spawn and an argv array,
 * never through a shell, so a file name can never be read as shell syntax.
 *
 * - `{path}` inside any argv item is replaced by the file's absolute path (as part of that one
 *   argument; a name with spaces, quotes, `$(...)`, newlines or a leading `-` stays one argument).
 * - The program runs in its own process group (`detached: true` makes it a group leader), so
 *   that a timeout, a lost lease or the daemon stopping can kill everything it started, and so
 *   that a daemon on the same host can kill it after this daemon died (see orphans.ts, which
 *   recognises it by CKPT_CLAIM_TOKEN in /proc/PID/environ).
 * - Exit 0 is success (stats from the last stdout line, see stats-line.ts); exit 65
 *   (EX_DATAERR) is a permanent failure; anything else is a failure that will be retried.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Handler, HandlerContext, HandlerOutcome } from './handler-types.js';
import { nativeAddon } from '../native/addon.js';
import { nativeLauncher } from './native-launcher.js';
import { LEASE_PASSED, SpawnHelper, type LaunchEvents, type Launcher, type OutputTail } from './spawn-helper.js';
import { ByteTail, killGroup } from './process-group.js';

export { ByteTail, killGroup };
import { readStatsLine } from './stats-line.js';

export interface CommandHandlerConfig {
  /** argv: program and arguments; `{path}` is replaced by the file's absolute path. */
  command: readonly string[];
  /** Whole-run limit; unset or 0 means no limit. */
  timeoutMs?: number;
  /** Time between SIGTERM and SIGKILL when ckpt stops a handler (default 5000). */
  killGraceMs?: number;
  cwd?: string;
  /**
   * 'native' (default when the native part is loaded): posix_spawn in the daemon
   * (native-launcher.ts); 'helper' (default otherwise): programs are started by a small helper
   * process, so the daemon's event loop is not blocked by each fork (spawn-helper.ts has the
   * numbers); 'direct': Node's spawn in the daemon itself. Not a configuration key: the
   * benchmark compares them.
   */
  spawnVia?: 'native' | 'helper' | 'direct';
}

export const PATH_PLACEHOLDER = '{path}';
export const DEFAULT_KILL_GRACE_MS = 5000;
/** sysexits EX_DATAERR: the handler says the file itself is bad; retrying cannot help. */
export const EXIT_DATAERR = 65;
/**
 * Bytes kept from the end of each of stdout and stderr. A handler may print megabytes; keeping
 * only a tail bounds memory per running handler to about 8 KB. 4 KB of stdout holds the stats
 * line (about 50 bytes), and 4 KB of stderr holds the usual last error and its stack.
 */
export const OUTPUT_TAIL_BYTES = 4096;
/**
 * After the group was killed, how long to wait for stdout/stderr to reach EOF before giving up
 * on them. A killed group closes its pipes within milliseconds; only a descendant that left the
 * group (its own setsid) can keep them open, and we must not wait on it for its lifetime.
 */
const PIPE_DRAIN_MS = 1000;


/** Checks the configuration once, so that a broken one stops the daemon at start (exit 78). */
function validate(cfg: CommandHandlerConfig): void {
  const { command } = cfg;
  if (!Array.isArray(command) || command.length === 0) {
    throw new Error('handler.command must be a non-empty argv array, e.g. ["/usr/local/bin/load", "{path}"]');
  }
  command.forEach((arg, i) => {
    if (typeof arg !== 'string') throw new Error(`handler.command[${i}] must be a string, got ${typeof arg}`);
    if (arg.includes('\0')) throw new Error(`handler.command[${i}] contains a NUL byte`);
  });
  if (command[0] === '') throw new Error('handler.command[0] (the program) must not be empty');
  if (cfg.timeoutMs !== undefined && !(Number.isFinite(cfg.timeoutMs) && cfg.timeoutMs >= 0)) {
    throw new Error(`handler.timeoutMs must be a number of milliseconds >= 0 (0: no limit), got ${String(cfg.timeoutMs)}`);
  }
  if (cfg.killGraceMs !== undefined && !(Number.isFinite(cfg.killGraceMs) && cfg.killGraceMs >= 0)) {
    throw new Error(`handler.killGraceMs must be a number of milliseconds >= 0, got ${String(cfg.killGraceMs)}`);
  }
  if (cfg.cwd !== undefined) {
    let isDir = false;
    try {
      isDir = fs.statSync(cfg.cwd).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) throw new Error(`handler.cwd is not a directory: ${cfg.cwd}`);
  }
}

/** The argv for one file: every `{path}` in every item replaced by the absolute path. */
export function buildArgv(command: readonly string[], file: string): string[] {
  // split/join rather than replaceAll(string, string): a replacement string treats `$&`, `$'`
  // and `` $` `` as patterns, and a file may well be named `report$&.csv`.
  return command.map((arg) => arg.split(PATH_PLACEHOLDER).join(file));
}

export function createCommandHandler(cfg: CommandHandlerConfig, env: NodeJS.ProcessEnv = process.env): Handler {
  validate(cfg);
  const command = [...cfg.command];
  const opts: RunOptions = {
    launch: launcherFor(cfg.spawnVia),
    command,
    timeoutMs: timerDelay(cfg.timeoutMs),
    killGraceMs: Math.min(cfg.killGraceMs ?? DEFAULT_KILL_GRACE_MS, MAX_TIMER_MS),
    cwd: cfg.cwd,
    // A plain copy, taken once: spreading process.env itself for every run read each variable
    // through its getter, about 0.1 ms a run (a tenth of the daemon's CPU per `true`).
    env: { ...env },
  };
  return (ctx) => runCommand(opts, ctx);
}

function launcherFor(via: CommandHandlerConfig['spawnVia']): Launcher {
  if (via === 'direct') return launchDirect;
  const addon = via === 'helper' ? null : nativeAddon();
  if (addon !== null) return nativeLauncher(addon);
  if (via === 'native') throw new Error('the native part is not loaded: cannot start handlers with posix_spawn');
  return new SpawnHelper().launch;
}

/** setTimeout fires at once (with a warning) for delays above 2^31-1 ms; that long is "never". */
export const MAX_TIMER_MS = 2_147_483_647;

/** A configured limit as a timer delay: undefined for none (unset, 0, or beyond a timer's reach). */
export function timerDelay(ms: number | undefined): number | undefined {
  return ms === undefined || ms === 0 || ms > MAX_TIMER_MS ? undefined : ms;
}

interface RunOptions {
  launch: Launcher;
  command: string[];
  timeoutMs: number | undefined;
  killGraceMs: number;
  cwd: string | undefined;
  env: NodeJS.ProcessEnv;
}

function runCommand(opts: RunOptions, ctx: HandlerContext): Promise<HandlerOutcome> {
  const started = performance.now();
  if (ctx.signal.aborted) {
    return Promise.resolve(failure('aborted', `aborted before start (${reasonText(ctx.signal.reason)})`, 0));
  }
  return new Promise<HandlerOutcome>((resolve) => new CommandRun(opts, ctx, started, resolve).start());
}

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };
type Stopping = { kind: 'timeout' | 'aborted'; what: string };

/**
 * One run of the program for one file, from launch to outcome. The launcher calls back in the
 * order spawned (or failed), exited, closed (LaunchEvents); the outcome is settled once, on
 * `failed` or on `closed`, and settling clears the timers and the abort listener.
 *
 * Stopping (timeout or abort) is SIGTERM to the process group, then SIGKILL after the grace if
 * the program has not exited by then; once asked to stop, the outcome is the timeout/abort
 * whatever the program exits with.
 */
class CommandRun implements LaunchEvents {
  private readonly log: Logger;
  private readonly file: string;
  private readonly argv: string[];
  private readonly program: string;
  private pgid: number | undefined;
  private settled = false;
  private exit: ExitStatus | null = null;
  private stopping: Stopping | null = null;
  private sigkillSent = false;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: RunOptions,
    private readonly ctx: HandlerContext,
    private readonly started: number,
    private readonly resolve: (outcome: HandlerOutcome) => void,
  ) {
    this.log = ctx.logger;
    this.file = path.resolve(ctx.fileUrl);
    this.argv = buildArgv(opts.command, this.file);
    this.program = this.argv[0] ?? '';
  }

  /** Ask the launcher to start the program, with the file's details in its environment. */
  start(): void {
    const { ctx, file } = this;
    this.opts.launch(
      {
        program: this.program,
        args: this.argv.slice(1),
        cwd: this.opts.cwd,
        env: {
          ...this.opts.env,
          CKPT_FILE: file,
          CKPT_FILE_TYPE: ctx.fileType,
          CKPT_VERSION: String(ctx.version),
          CKPT_ATTEMPT: String(ctx.attempt),
          CKPT_WORKER_ID: ctx.workerId,
          CKPT_IDEMPOTENCY_KEY: ctx.idempotencyKey,
          CKPT_CLAIM_TOKEN: ctx.claimToken,
        },
        tailBytes: OUTPUT_TAIL_BYTES,
        drainMs: PIPE_DRAIN_MS,
        ...(ctx.startBy === undefined ? {} : { notAfter: ctx.startBy }),
      },
      this,
    );
  }

  spawned(pid: number): void {
    const { ctx, log } = this;
    this.pgid = pid;
    try {
      ctx.onSpawn?.(pid);
    } catch (err) {
      log.warn({ err, pgid: pid }, 'onSpawn callback threw; the handler keeps running');
    }
    log.debug({ pgid: pid, argv: this.argv }, 'handler started');
    ctx.signal.addEventListener('abort', this.onAbort, { once: true });
    // Aborted while the helper was starting it: stop it now.
    if (ctx.signal.aborted) this.onAbort();
    if (this.opts.timeoutMs !== undefined) {
      const timeoutMs = this.opts.timeoutMs;
      this.timeoutTimer = setTimeout(() => this.stop('timeout', `timed out after ${timeoutMs} ms`), timeoutMs);
    }
  }

  failed(err: NodeJS.ErrnoException): void {
    // The program could not be started at all (ENOENT, EACCES, missing cwd, NUL bytes).
    this.settle(failure('spawn', spawnErrorText(err, this.program, this.opts.cwd), this.elapsed()));
  }

  exited(code: number | null, signal: NodeJS.Signals | null, leftovers: boolean): void {
    this.exit = { code, signal };
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.graceTimer);
    // Nothing the handler started may outlive the attempt: a background child left in its
    // group (or one that ignored our SIGTERM) was SIGKILLed at the exit. Linux does not
    // hand a pid out again while a process group still carries it, so -pgid reached only
    // this handler's leftovers, or nobody (ESRCH).
    if (leftovers) this.log.info({ pgid: this.pgid }, 'killed processes left in the handler process group after it exited');
  }

  closed(out: OutputTail, err: OutputTail, abandoned: boolean): void {
    if (abandoned) {
      this.log.warn({ pgid: this.pgid }, `handler stdout/stderr still open ${PIPE_DRAIN_MS} ms after its group was killed (a descendant left the group?); not waiting for them`);
    }
    // 'closed' comes after the exit and after stdout/stderr reached EOF (or were
    // abandoned), so the stats line has been read completely.
    if (this.exit === null) return;
    const stdout = ByteTail.of(OUTPUT_TAIL_BYTES, out);
    const stderr = ByteTail.of(OUTPUT_TAIL_BYTES, err);
    this.settle(outcomeOf(this.exit, this.stopping, this.sigkillSent, this.opts.killGraceMs, stdout, stderr, this.log, this.elapsed()));
  }

  childError(err: Error): void {
    this.log.warn({ err, pgid: this.pgid }, 'handler child process error');
  }

  /** An arrow, so that removeEventListener is handed the very function that was added. */
  private readonly onAbort = (): void => {
    this.stop('aborted', `aborted (${reasonText(this.ctx.signal.reason)})`);
  };

  /** SIGTERM the group now, SIGKILL it after the grace if the leader is still there. */
  private stop(kind: Stopping['kind'], what: string): void {
    if (this.stopping || this.exit || this.pgid === undefined) return;
    const { log } = this;
    const group = this.pgid;
    const graceMs = this.opts.killGraceMs;
    this.stopping = { kind, what };
    log.warn({ pgid: group, kind, graceMs }, `stopping handler: ${what}`);
    killGroup(group, 'SIGTERM', log);
    this.graceTimer = setTimeout(() => {
      this.sigkillSent = true;
      log.warn({ pgid: group }, `handler still running ${graceMs} ms after SIGTERM: SIGKILL`);
      killGroup(group, 'SIGKILL', log);
    }, graceMs);
  }

  private settle(outcome: HandlerOutcome): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.graceTimer);
    this.ctx.signal.removeEventListener('abort', this.onAbort);
    this.resolve(outcome);
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.started);
  }
}

/** In the daemon's own thread: Node's spawn, which blocks for the fork (see spawn-helper.ts). */
export const launchDirect: Launcher = (req, ev) => {
  if (req.notAfter !== undefined && Date.now() > req.notAfter) {
    ev.failed(Object.assign(new Error('not started: the lease ran out before the handler could start'), { code: LEASE_PASSED }));
    return;
  }
  let child: ChildProcess;
  try {
    child = spawn(req.program, req.args, { shell: false, detached: true, stdio: ['ignore', 'pipe', 'pipe'], cwd: req.cwd, env: req.env });
  } catch (err) {
    // Synchronous spawn errors: invalid arguments (e.g. a NUL byte in the environment).
    ev.failed(err as NodeJS.ErrnoException);
    return;
  }
  const out = new ByteTail(req.tailBytes);
  const err = new ByteTail(req.tailBytes);
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  let abandoned = false;
  let drain: NodeJS.Timeout | undefined;
  child.on('error', (e: NodeJS.ErrnoException) => {
    if (child.pid === undefined) ev.failed(e);
    else ev.childError(e);
  });
  const pid = child.pid;
  if (pid === undefined) return; // the 'error' event follows
  ev.spawned(pid);
  child.on('exit', (code, signal) => {
    ev.exited(code, signal, killGroup(pid, 'SIGKILL'));
    drain = setTimeout(() => {
      abandoned = true;
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, req.drainMs);
  });
  child.on('close', () => {
    clearTimeout(drain);
    ev.closed({ bytes: out.bytes(), seen: out.seen }, { bytes: err.bytes(), seen: err.seen }, abandoned);
  });
};

function outcomeOf(
  exit: ExitStatus,
  stopping: Stopping | null,
  sigkillSent: boolean,
  killGraceMs: number,
  stdout: ByteTail,
  stderr: ByteTail,
  log: Logger,
  durationMs: number,
): HandlerOutcome {
  const how = exit.code !== null ? `exit code ${exit.code}` : `killed by signal ${exit.signal ?? 'unknown'}`;
  // Once ckpt asked the handler to stop, the outcome is the timeout/abort whatever it exited
  // with: many programs exit 0 on SIGTERM, and that must not count as a finished file.
  if (stopping) {
    const kill = sigkillSent ? `SIGTERM, then SIGKILL after ${killGraceMs} ms` : 'SIGTERM';
    return failure(stopping.kind, `${stopping.what}; ${kill} sent to the process group; ${how}${stderrText(stderr)}`, durationMs);
  }
  if (exit.code === 0) {
    const { stats, rejected } = readStatsLine(stdout.text());
    if (rejected) log.warn({ stdoutTail: lastChars(stdout.text(), 300) }, rejected);
    return { ok: true, stats, durationMs };
  }
  if (exit.code === EXIT_DATAERR) {
    return { ok: false, permanent: true, kind: 'exit', error: `exit code 65 (EX_DATAERR: the handler rejected the file)${stderrText(stderr)}`, durationMs };
  }
  if (exit.code !== null) return failure('exit', `${how}${stderrText(stderr)}`, durationMs);
  return failure('signal', `${how}${stderrText(stderr)}`, durationMs);
}

function failure(kind: 'exit' | 'signal' | 'timeout' | 'aborted' | 'spawn', error: string, durationMs: number): HandlerOutcome {
  return { ok: false, permanent: false, kind, error, durationMs };
}

function stderrText(stderr: ByteTail): string {
  if (stderr.size === 0) return '';
  const label = stderr.truncated ? `stderr (last ${stderr.size} of ${stderr.seen} bytes)` : 'stderr';
  return `; ${label}:\n${stderr.text()}`;
}

function lastChars(s: string, n: number): string {
  return s.length <= n ? s : s.slice(s.length - n);
}


/**
 * A program that cannot be started is a configuration problem, not a problem of the file: the
 * failure is NOT permanent, so that once the operator fixes the command (or installs the
 * program) the files retry instead of having been sent to `dead` in the meantime.
 */
function spawnErrorText(err: unknown, program: string, cwd: string | undefined): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') {
    // spawn reports a missing working directory as ENOENT of the program too.
    if (cwd !== undefined && !fs.existsSync(cwd)) return `handler working directory not found: ${cwd}`;
    return `handler program not found: ${program}`;
  }
  if (code === 'EACCES') return `handler program is not executable (permission denied): ${program}`;
  if (code === LEASE_PASSED) return 'handler not started: the lease ran out before it could start (the daemon was stopped or stalled)';
  const msg = err instanceof Error ? err.message : String(err);
  return `could not start handler program ${program}: ${msg}`;
}

function reasonText(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  if (reason === undefined) return 'no reason given';
  try {
    return String(reason);
  } catch {
    return 'unprintable reason';
  }
}
