/**
 * Exit codes of the `ckpt` command (sysexits.h numbers, so that systemd, shells and
 * supervisors can tell "fix the config" from "try again later").
 */
export const EXIT = Object.freeze({
  OK: 0,
  /** `ckpt run --once` finished, but some files ended dead. */
  DEAD_FILES: 1,
  /** EX_USAGE: bad command line (unknown option, missing argument, bad duration). */
  USAGE: 64,
  /** EX_DATAERR: the input names something that is not there (a file not in the ledger). */
  DATA: 65,
  /** EX_UNAVAILABLE: the database cannot be opened, is locked, or is not supported. */
  UNAVAILABLE: 69,
  /** EX_SOFTWARE: a bug in ckpt (an error nobody classified). */
  SOFTWARE: 70,
  /** EX_CANTCREAT: `ckpt init` would overwrite an existing file. */
  CANT_CREATE: 73,
  /** EX_CONFIG: the configuration is unusable. */
  CONFIG: 78,
});

/** An error the CLI prints as one line (no stack) and exits with. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly exitCode: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
