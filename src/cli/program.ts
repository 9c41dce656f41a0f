/**
 * The `ckpt` command line (commander 14): one subcommand a file in ./commands/, loaded only when
 * it runs, so `ckpt status` does not load chokidar, prom-client or the runner.
 *
 * Why commander: subcommands with their own options and generated `--help` on each, option
 * parsing with custom value parsers (durations), `--version`, and an exit override that lets us
 * map every usage error to exit 64: about 200 lines we would otherwise write and test ourselves,
 * for a dependency with no dependencies of its own.
 */
import { Command, Option } from 'commander';
import { STATUSES } from '../store/types.js';
import type { GlobalOptions } from './context.js';
import type { ConfigOverrides } from '../config/types.js';
import { durationArg, limitArg, purgeStatusArg, retryUsageProblem, type PurgeStatus } from './args.js';
import { CliError, EXIT } from './exit-codes.js';

/** Receives each action's exit code (commander's actions return nothing useful). */
export interface ProgramResult {
  exitCode: number;
}

/**
 * The whole command line. Subcommands are registered by group, in the order `--help` lists them
 * (sortSubcommands is off): running, reading, changing the ledger, setting up and checking.
 */
export function buildProgram(version: string, result: ProgramResult): Command {
  const program = rootCommand(version);
  addRunning(program, result);
  addReading(program, result);
  addChanging(program, result);
  addSetUp(program, result);
  return program;
}

/** `ckpt` itself: its global options, the exit-code and example text under `--help`. */
function rootCommand(version: string): Command {
  const program = new Command('ckpt');
  program
    .description('Exactly-once file ingestion: watch folders, run a handler once per file, keep a ledger in SQLite.')
    .version(version, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help')
    .option('-c, --config <file>', 'the configuration file (default: $CKPT_CONFIG, else ./ckpt.config.json)')
    .option('--database <path>', "use this database instead of the config's (a SQLite file or a postgres:// URL)")
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    // Every subcommand inherits these two (they are copied when .command() creates it).
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 \`run --once\` ended with dead files, 64 usage, 65 data (file not in the
ledger), 69 database unavailable, 73 init would overwrite, 78 configuration.
Examples:
  ckpt init ./ingest                 a starter config, inbox and handler
  ckpt validate                      is the config ready to run, here, as this user?
  ckpt run --once                    handle what is there now, then exit
  ckpt status                        counts, rates, mode and workers
  ckpt top                           the same, live, with files in flight and failures
  ckpt list --status dead            what gave up
  ckpt retry --dead                  try every dead file again`,
    );
  return program;
}

/** The global options (`--config`, `--database`) as seen from a subcommand. */
function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** The resolved config for a subcommand: its file, the environment, then the global flags. */
async function config(cmd: Command, overrides: ConfigOverrides = {}) {
  const { loadCliConfig } = await import('./context.js');
  return loadCliConfig(globals(cmd), overrides);
}

/** The daemon: `run`. */
function addRunning(program: Command, result: ProgramResult): void {
  program
    .command('run')
    .description('watch the configured folders and handle each file once (the daemon)')
    .option('--once', 'handle the files present at start until each is completed or dead, then exit (1 if any is dead)')
    .option('--concurrency <n>', 'files handled at once (overrides the config)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .option('--log-format <format>', 'auto (pretty on a terminal), json or pretty')
    .option('--worker-id <id>', 'name of this process in the ledger (default hostname:pid)')
    .option('--http-port <port>', 'serve /metrics and /healthz on 127.0.0.1:PORT')
    .action(async (opts: import('./commands/run.js').RunOptions, cmd: Command) => {
      const { runCommand, runOverrides } = await import('./commands/run.js');
      const { loadCliConfig } = await import('./context.js');
      // SIGHUP reads the file again under the same environment and flags as at start.
      const load = () => loadCliConfig(globals(cmd), runOverrides(opts));
      result.exitCode = await runCommand(load(), opts, load);
    });
}

/** Read-only views of the ledger: `status`, `top`, `list`, `show`. */
function addReading(program: Command, result: ProgramResult): void {
  program
    .command('status')
    .description('counts by status, oldest waiting file, recent outcomes, mode and live workers')
    .option('--json', 'print JSON (shape documented in docs/cli.md)')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { statusCommand } = await import('./commands/status.js');
      result.exitCode = await statusCommand(await config(cmd), opts);
    });

  program
    .command('top')
    .description('a live view: mode, rates, backlog, files in flight, workers, last failures (q quits)')
    .option('--once', 'print one snapshot and exit (what happens anyway without a terminal)')
    .option('--json', 'print one snapshot as a JSON line and exit (shape documented in docs/top.md)')
    .action(async (opts: import('./commands/top.js').TopOptions, cmd: Command) => {
      const { topCommand } = await import('./commands/top.js');
      result.exitCode = await topCommand(await config(cmd), opts);
    });

  program
    .command('list')
    .description('files in the ledger, in path order')
    .addOption(new Option('--status <status>', 'only files in this status').choices(STATUSES))
    .option('--type <type>', 'only files of this type')
    .option('--since <duration>', 'only files changed within this long (30s, 15m, 2h, 7d)', durationArg)
    .option('--limit <n>', 'at most this many files (0: all)', limitArg, 100)
    .option('--json', 'print JSON (shape documented in docs/cli.md)')
    .action(async (opts: import('./commands/list.js').ListOptions, cmd: Command) => {
      const { listCommand } = await import('./commands/list.js');
      result.exitCode = await listCommand(await config(cmd), opts);
    });

  program
    .command('show')
    .description("one file's record, every attempt at it, and what was done with it")
    .argument('<file>', 'the file (a relative path is taken from the current folder)')
    .option('--json', 'print JSON (shape documented in docs/cli.md)')
    .action(async (file: string, opts: { json?: boolean }, cmd: Command) => {
      const { showCommand } = await import('./commands/show.js');
      result.exitCode = await showCommand(await config(cmd), file, opts);
    });
}

/** Operator writes to the ledger: `retry`, `purge`. */
function addChanging(program: Command, result: ProgramResult): void {
  program
    .command('retry')
    .description('put failed or dead files back in the queue with a fresh retry budget')
    .argument('[files...]', 'files to requeue')
    .option('--dead', 'requeue every dead file')
    .option('--type <type>', 'with --dead: only dead files of this type')
    .option('--json', 'print JSON (shape documented in docs/cli.md)')
    .action(async (files: string[], opts: import('./commands/retry.js').RetryOptions, cmd: Command) => {
      const { retryCommand } = await import('./commands/retry.js');
      const problem = retryUsageProblem(files, opts);
      if (problem !== null) throw new CliError(EXIT.USAGE, problem);
      result.exitCode = await retryCommand(await config(cmd), files, opts);
    });

  program
    .command('purge')
    .description('delete old finished rows (a small tombstone stays, so the file is not handled again)')
    .requiredOption('--older-than <duration>', 'rows unchanged for longer than this (30s, 15m, 2h, 7d)', durationArg)
    .option('--status <which>', 'completed (default), dead, completed,dead or all', purgeStatusArg)
    .option('--json', 'print JSON (shape documented in docs/cli.md)')
    .action(async (opts: { olderThan: number; status?: PurgeStatus[]; json?: boolean }, cmd: Command) => {
      const { purgeCommand } = await import('./commands/purge.js');
      const purgeOpts: import('./commands/purge.js').PurgeOptions = { olderThan: opts.olderThan, status: opts.status ?? ['completed'] };
      if (opts.json !== undefined) purgeOpts.json = opts.json;
      result.exitCode = await purgeCommand(await config(cmd), purgeOpts);
    });
}

/** Setting up and checking: `doctor`, `validate`, `init`. */
function addSetUp(program: Command, result: ProgramResult): void {
  program
    .command('doctor')
    .description('check the database, journals, markers and mode; exit non-zero when a person is needed')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      // commands/doctor.ts comes from the fallback work: it knows what degraded mode leaves behind.
      const { doctorCommand } = await import('./commands/doctor.js');
      result.exitCode = await doctorCommand(await config(cmd), opts);
    });

  program
    .command('validate')
    .description('check the config (every problem), its folders, the handler and the database; exit 78 when ckpt run could not work')
    .option('--json', 'print JSON (shape documented in docs/validate.md)')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { configPathOf } = await import('./context.js');
      const { validateCommand } = await import('./commands/validate.js');
      const g = globals(cmd);
      result.exitCode = await validateCommand(configPathOf(g), g.database === undefined ? {} : { database: g.database }, opts);
    });

  program
    .command('init')
    .description('write a starter ckpt.config.json, an inbox and an example handler into DIR')
    .argument('[dir]', 'where to set up (default: the current folder)')
    .action(async (dir: string | undefined) => {
      const { initCommand } = await import('./commands/init.js');
      result.exitCode = await initCommand(dir);
    });
}
