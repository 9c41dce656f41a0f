/**
 * Why a module handler failed to load, in one line: `Name: message (where)`. A load error is a
 * configuration problem, so the operator needs the cause and the place in their file, not the
 * 10-20 frames of Node's module loader that the raw stack holds.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const JS_EXTENSION = /\.[cm]?js$/i;
/** `file:///x/h.mjs:3` (the first line of a link-time SyntaxError's stack). */
const URL_LINE = /^(file:\/\/\S+?):(\d+)$/;
/** `at file:///x/h.mjs:3:7` or `at fn (file:///x/h.mjs:3:7)`. */
const FRAME = /\(?(file:\/\/[^\s)]+?):(\d+):(\d+)\)?$/;
/** ckpt's own code and dependencies (a loader such as tsx): their frames are not the cause. */
const OWN = ['dist/', 'src/', 'node_modules/'].map((d) => new URL(`../../${d}`, import.meta.url).href);

export function loadErrorText(err: unknown, file: string): string {
  if (!(err instanceof Error)) return `threw a non-Error value: ${safeString(err)}`;
  const message = err.message.split('\n')[0] ?? '';
  const head = `${err.name}: ${message}`;
  const where = locate(err, file);
  return where ? `${head} (${where})` : head;
}

/** The user's file and line the error points at, when the error says (or `node --check` can tell). */
function locate(err: Error, file: string): string | null {
  // Node's own loader errors (ERR_MODULE_NOT_FOUND...) name the importing file in the message;
  // their frames are the loader's.
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && code.startsWith('ERR_')) return null;
  const lines = (err.stack ?? '').split('\n');
  const first = URL_LINE.exec(lines[0] ?? '');
  if (first) return `${pathOf(first[1]!)}:${first[2]}`;
  for (const l of lines) {
    const m = FRAME.exec(l.trim());
    if (l.trimStart().startsWith('at ') && m && !OWN.some((o) => m[1]!.startsWith(o))) return `${pathOf(m[1]!)}:${m[2]}:${m[3]}`;
  }
  // A parse error of the module itself carries no position in Node 20 (the position is only
  // printed for an uncaught error). `node --check` prints it: asked only on this error path.
  if (err.name === 'SyntaxError' && JS_EXTENSION.test(file)) return checkedPosition(file);
  return null;
}

function checkedPosition(file: string): string | null {
  try {
    const r = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
    const m = /^(.+):(\d+)$/m.exec(r.stderr ?? '');
    return m ? `${m[1]}:${m[2]}` : null;
  } catch {
    return null;
  }
}

function pathOf(url: string): string {
  try {
    return fileURLToPath(url);
  } catch {
    return url;
  }
}

function safeString(v: unknown): string {
  try {
    return typeof v === 'object' ? (JSON.stringify(v) ?? String(v)) : String(v);
  } catch {
    return 'a value that cannot be printed';
  }
}
