/**
 * Running ckpt, or a fixture, as another (unprivileged) user.
 *
 * Some tests need a daemon that is not root: mode 000 must really lock it out, a per-user
 * kernel limit must be its own, `ckpt run` must not warn about root. As root they switch to a
 * uid of their choosing with setpriv. That user must be able to reach what it runs: the node
 * binary, dist/, the runtime node_modules and the fixture. A clone in a folder only its owner
 * can enter (mktemp -d makes 0700 folders; /root is 0700) hides all of them, and the owner's
 * folders are not the tests' to open up. So the first test that asks gets a copy under the
 * system temp folder that everyone may read: package.json, dist/, the packages that
 * package-lock.json does not mark as dev-only, and each fixture asked for. Files that others
 * may read already are hard-linked (2,800 files; the copy and its check took 0.7 to 1.0 s on
 * 2 loaded cores); the others are copied and made readable, as is anything on another file
 * system. One copy per test file, removed after it.
 *
 * Where nothing can run as another user (not root, no setpriv, a temp folder the user cannot
 * enter) `skipReason` says why, for the test to print. In CI (CI=true) a test that asks anyway
 * fails with that reason instead, so a broken set-up cannot pass as skipped.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { REPO } from './spawn.js';

export const runningAsRoot: boolean = typeof process.getuid === 'function' && process.getuid() === 0;

export interface OtherUser {
  readonly uid: number;
  /** Why nothing can run as `uid` here; null when it can, and always null in CI (see above). */
  readonly skipReason: string | null;
  /** argv in front of a command to run it as `uid` (group `uid`, no supplementary groups). */
  prefix(): string[];
  /** A node binary the user can run: process.execPath, or a copy when that is out of reach. */
  node(): string;
  /** Where the user's copy holds `file` (an absolute path inside the repository). */
  copyOf(file: string): string;
  /** chown -R `file` (a file or folder) to the user, symlinks not followed (the test's own files only). */
  own(file: string): void;
}

/**
 * The handle for `uid`, made at a test file's top level: it removes its copy after the file.
 * Nothing is copied until a test asks for a path.
 */
export function otherUser(uid: number): OtherUser {
  const prefix = ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const unavailable = whyNot(prefix);
  const inCi = process.env.CI === 'true';
  let copy: { root: string; node: string } | null = null;
  const usable = (): void => {
    if (unavailable !== null) throw new Error(`cannot run anything as uid ${uid}${inCi ? ' (in CI this is a failure, not a skip)' : ''}: ${unavailable}`);
  };
  const made = (): { root: string; node: string } => {
    usable();
    copy ??= makeCopy(prefix);
    return copy;
  };
  afterAll(() => {
    if (copy) fs.rmSync(copy.root, { recursive: true, force: true });
    copy = null;
  });
  return {
    uid,
    skipReason: inCi ? null : unavailable,
    prefix() {
      usable();
      return [...prefix];
    },
    node: () => made().node,
    copyOf(file) {
      const rel = path.relative(REPO, file);
      if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${file} is not inside ${REPO}`);
      const dst = path.join(made().root, rel);
      if (!fs.existsSync(dst)) {
        mkdirsReadable(made().root, path.dirname(rel));
        share(file, dst);
      }
      return dst;
    },
    own(file) {
      usable();
      chownTree(file, uid);
    },
  };
}

/** Null when `prefix` runs commands that can enter the system temp folder; else why not. */
function whyNot(prefix: string[]): string | null {
  if (typeof process.getuid !== 'function') return 'no getuid() on this platform';
  if (!runningAsRoot) return 'not root: cannot run processes as another user';
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), 'test', '-x', os.tmpdir()], { encoding: 'utf8' });
  if (r.error) return `${prefix[0]} is missing: ${r.error.message}`;
  if (r.status === 1 && r.stderr === '') return `the user cannot enter the temp folder ${os.tmpdir()}`;
  if (r.status !== 0) return `${prefix.join(' ')} failed: ${r.stderr.trim()}`;
  return null;
}

/** The copy: package.json, dist/, the runtime packages and the native part, then `ckpt --version` run as the user. */
function makeCopy(prefix: string[]): { root: string; node: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-as-user-'));
  fs.chmodSync(root, 0o755);
  try {
    share(path.join(REPO, 'package.json'), path.join(root, 'package.json'));
    share(path.join(REPO, 'dist'), path.join(root, 'dist'));
    fs.mkdirSync(path.join(root, 'node_modules'));
    fs.chmodSync(path.join(root, 'node_modules'), 0o755);
    for (const pkg of runtimePackages()) {
      mkdirsReadable(root, path.dirname(pkg));
      share(path.join(REPO, pkg), path.join(root, pkg));
    }
    // The native part `npm ci` built (src/native/addon.ts loads it from build/Release).
    const addon = path.join('build', 'Release', 'ckpt_native.node');
    if (fs.existsSync(path.join(REPO, addon))) {
      mkdirsReadable(root, path.dirname(addon));
      share(path.join(REPO, addon), path.join(root, addon));
    }
    // `test -x`, not a run of node: setpriv's own exec reached a node binary inside a 0700
    // folder here, but the daemon's children (the spawn helper, handlers) could not.
    const node = runs(prefix, 'test', ['-x', process.execPath]) === null ? process.execPath : path.join(root, 'node');
    if (node !== process.execPath) share(process.execPath, node);
    const failed = runs(prefix, 'test', ['-x', node]) ?? runs(prefix, node, [path.join(root, 'dist/cli/main.js'), '--version']);
    if (failed !== null) throw new Error(`${prefix.join(' ')} cannot run ckpt from its copy in ${root}: ${failed}`);
    return { root, node };
  } catch (err) {
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

/** Null when `cmd args` exits 0 as the user; else the command and its error output. */
function runs(prefix: string[], cmd: string, args: string[]): string | null {
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), cmd, ...args], { encoding: 'utf8', cwd: os.tmpdir() });
  if (r.status === 0) return null;
  return `${[cmd, ...args].join(' ')}: ${(r.error?.message ?? r.stderr.trim()) || `exit ${r.status}`}`;
}

/**
 * node_modules/<name> (and @scope/<name>) of every installed package that package-lock.json
 * does not mark as dev-only: what dist/ needs at run time. Nested node_modules come with their
 * package. An optional package that is not installed here is left out.
 */
function runtimePackages(): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  return Object.entries(lock.packages)
    .filter(([key, info]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(key) && info.dev !== true)
    .map(([key]) => key)
    .filter((key) => fs.existsSync(path.join(REPO, key)));
}

/** mkdir -p `rel` below `root`, each new folder 0755 whatever the umask. */
function mkdirsReadable(root: string, rel: string): void {
  let dir = root;
  for (const part of rel.split(path.sep).filter((p) => p && p !== '.')) {
    dir = path.join(dir, part);
    if (fs.existsSync(dir)) continue;
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o755);
  }
}

/**
 * Put `src` at `dst` so that everyone can read it: a hard link where others may read (and,
 * if it is executable, run) it already; otherwise, or across file systems, a copy made 0644,
 * or 0755 when it was executable. Folders are 0755; symlinks stay symlinks.
 */
function share(src: string, dst: string): void {
  const st = fs.lstatSync(src);
  if (st.isSymbolicLink()) return fs.symlinkSync(fs.readlinkSync(src), dst);
  if (st.isDirectory()) {
    fs.mkdirSync(dst);
    fs.chmodSync(dst, 0o755);
    for (const name of fs.readdirSync(src)) share(path.join(src, name), path.join(dst, name));
    return;
  }
  const executable = (st.mode & 0o100) !== 0;
  const othersMay = (st.mode & 0o004) !== 0 && (!executable || (st.mode & 0o001) !== 0);
  if (othersMay) {
    try {
      return fs.linkSync(src, dst);
    } catch (err) {
      if (!['EXDEV', 'EPERM', 'EMLINK'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  }
  fs.copyFileSync(src, dst);
  fs.chmodSync(dst, executable ? 0o755 : 0o644);
}

function chownTree(file: string, uid: number): void {
  fs.lchownSync(file, uid, uid);
  if (!fs.lstatSync(file).isDirectory()) return;
  for (const name of fs.readdirSync(file)) chownTree(path.join(file, name), uid);
}
