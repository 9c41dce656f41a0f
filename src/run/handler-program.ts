/**
 * Can the command handler's program be started? The one check used by `ckpt run` at start
 * (exit 78), by the daemon while it runs (a program removed by an upgrade pauses claiming
 * instead of failing files) and by `ckpt doctor`.
 *
 * The program is looked up the way the spawn will look it up (libuv's execvp): a name with a
 * `/` is a path, relative to the handler's working folder (the config file's folder); a bare
 * name is searched in each PATH entry in order, an empty or relative entry meaning that
 * working folder too. The first entry holding an executable regular file wins; when none does,
 * the answer says why for the first entry that had the name at all (a directory, or a file
 * without the execute permission for this user), else "not found".
 */
import fs from 'node:fs';
import path from 'node:path';

export type ProgramCheck =
  | { ok: true; program: string; resolved: string }
  | { ok: false; program: string; why: string };

/** glibc's execvp search path when PATH is unset (confstr _CS_PATH). */
const DEFAULT_PATH = '/bin:/usr/bin';

/**
 * Whether `program` can be started from `cwd` with `env`'s PATH by the user this process runs
 * as. Only the file system is read (stat and access(X_OK)); nothing is run.
 */
export function checkProgram(program: string, cwd: string, env: NodeJS.ProcessEnv = process.env): ProgramCheck {
  if (!isDirectory(cwd)) return { ok: false, program, why: `the handler's working folder ${cwd} does not exist` };
  if (program.includes('/')) {
    const full = path.resolve(cwd, program);
    const why = unusable(full);
    return why === null ? { ok: true, program, resolved: full } : { ok: false, program, why: `${full} ${why}` };
  }
  const searchPath = env.PATH ?? DEFAULT_PATH;
  let firstProblem: string | null = null;
  for (const entry of searchPath.split(':')) {
    const full = path.resolve(cwd, entry, program);
    const why = unusable(full);
    if (why === null) return { ok: true, program, resolved: full };
    if (firstProblem === null && why !== NOT_FOUND) firstProblem = `${full} ${why}`;
  }
  return { ok: false, program, why: firstProblem ?? `not found in PATH (${searchPath})` };
}

const NOT_FOUND = 'does not exist';

/** null when `file` is an executable regular file for this user, else why not. */
function unusable(file: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return NOT_FOUND;
    return `cannot be read (${code ?? String(err)})`;
  }
  if (st.isDirectory()) return 'is a folder, not a program';
  if (!st.isFile()) return 'is not a regular file';
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    return `is not executable by this user (uid ${process.getuid?.() ?? '?'}; mode ${(st.mode & 0o777).toString(8)})`;
  }
  return null;
}

function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The one line `ckpt run` exits 78 with and `ckpt doctor` prints (`key`: the handler's key,
 * `watch[1].handler` for a route's):
 * `/etc/ckpt/ckpt.config.json: handler.command[0]: cannot run "loadr": not found in PATH (/usr/bin:/bin)`.
 */
export function programProblemLine(configPath: string, check: Extract<ProgramCheck, { ok: false }>, key = 'handler'): string {
  return `${configPath}: ${key}.command[0]: cannot run ${JSON.stringify(check.program)}: ${check.why}`;
}
