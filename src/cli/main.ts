#!/usr/bin/env node
/**
 * The `ckpt` executable (package.json "bin": dist/cli/main.js). Parses the command line, runs
 * one subcommand, and turns whatever went wrong into one line on stderr and a sysexits code:
 *
 *   64 usage (commander's errors)     69 database unavailable (StoreUnavailableError, open errors)
 *   65 data (a file not in the ledger) 78 configuration (ConfigError: its message only, no stack)
 *   70 anything unclassified (a bug: the stack is printed when CKPT_DEBUG is set)
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { CliError, EXIT } from './exit-codes.js';
import { buildProgram, type ProgramResult } from './program.js';
import { packageVersion } from '../version.js';

export { packageVersion } from '../version.js';

/** The subcommand named on the command line, for the hint after a usage error. */
function subcommandOf(argv: readonly string[], names: readonly string[]): string | undefined {
  return argv.find((a) => names.includes(a));
}

/** Runs the CLI on `argv` (without node and the script) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const result: ProgramResult = { exitCode: EXIT.OK };
  const program = buildProgram(packageVersion(), result);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return result.exitCode;
  } catch (err) {
    return reportError(err, () => {
      const cmd = subcommandOf(argv, program.commands.map((c) => c.name()));
      return cmd === undefined ? 'ckpt --help' : `ckpt ${cmd} --help`;
    });
  }
}

function reportError(err: unknown, helpHint: () => string): number {
  if (err instanceof CommanderError) {
    // --help and --version end parsing through the same exception, with exit code 0.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.OK;
    // `ckpt` alone: commander has printed the help to stderr already.
    if (err.code === 'commander.help') return EXIT.USAGE;
    process.stderr.write(`ckpt: ${err.message.replace(/^error: /, '')} (see '${helpHint()}')\n`);
    return EXIT.USAGE;
  }
  const e = err as { name?: unknown; message?: unknown; exitCode?: unknown; stack?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (err instanceof CliError) {
    process.stderr.write(`ckpt: ${message}\n`);
    return err.exitCode;
  }
  if (e?.name === 'ConfigError') {
    // The message names the file or variable, the key and what was expected: print it alone.
    process.stderr.write(`${message}\n`);
    return typeof e.exitCode === 'number' ? e.exitCode : EXIT.CONFIG;
  }
  if (e?.name === 'StoreUnavailableError') {
    process.stderr.write(`ckpt: database unavailable: ${message}\n`);
    return EXIT.UNAVAILABLE;
  }
  process.stderr.write(`ckpt: internal error: ${message}\n`);
  if (process.env.CKPT_DEBUG && typeof e?.stack === 'string') process.stderr.write(`${e.stack}\n`);
  else process.stderr.write('(set CKPT_DEBUG=1 for the stack trace, and please report it)\n');
  return EXIT.SOFTWARE;
}

// Run only as the executable, not when a test imports main().
const invoked = process.argv[1] === undefined ? '' : fs.realpathSync(process.argv[1]);
if (invoked === fileURLToPath(import.meta.url)) {
  // `ckpt list | head -3`: the reader went away, which is not an error of ours; no EPIPE trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.OK);
    throw err;
  });
  const code = await main(process.argv.slice(2));
  // exit() rather than exitCode: the daemon may leave timers or handles behind. stdout and
  // stderr are synchronous for files, pipes and terminals on Linux, so nothing is lost.
  process.exit(code);
}
