/**
 * Installing ckpt from a clone, as docs/install.md says: `npm ci` runs the `prepare` script
 * (the build), which must leave the `bin` (dist/cli/main.js) executable, both in the folder and
 * in what `npm pack` puts in the tarball; then `npm install -g` of the folder links a working
 * `ckpt`.
 *
 * The clone is a copy of the sources in a temp folder with this checkout's node_modules
 * hard-linked in (`npm ci` without the network), installed into a temp prefix: a symlink install,
 * so it costs one build (about 25 s on the loaded 2-core box) and touches nothing outside the
 * temp folders. The
 * install from a packed tarball also installs the dependencies from the registry and builds
 * better-sqlite3 when no prebuilt binary can be fetched (3 min 22 s measured on the 2-core box),
 * too slow for the suite: docs/install.md has the command and that timing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exec, killAll } from '../cli/cli-helper.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(() => {
  killAll();
  cleanupTmpDirs();
});

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
/** What a clone has before `npm ci` (no dist/: the build must make it). */
const SOURCES = ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'config', 'scripts'];

function cloneLike(): string {
  const dir = path.join(tmpDir('ckpt-clone-'), 'ckpt');
  fs.mkdirSync(dir);
  for (const name of SOURCES) fs.cpSync(path.join(REPO, name), path.join(dir, name), { recursive: true });
  return dir;
}

const npm = (args: string[], cwd: string) => exec('npm', [...args, '--no-audit', '--no-fund', '--offline'], { cwd });

describe('install from a clone', () => {
  it('the build leaves the bin executable: runnable in the folder, 0755 in the packed tarball, and it runs installed with npm install -g', async () => {
    const clone = cloneLike();
    // Hard links: npm cannot change this checkout's node_modules through them. Across file
    // systems (a tmpfs /tmp) a symlink does; npm only reads it here (checked: nothing written).
    const hardLinked = await exec('cp', ['-al', path.join(REPO, 'node_modules'), path.join(clone, 'node_modules')]);
    if (hardLinked.code !== 0) {
      fs.rmSync(path.join(clone, 'node_modules'), { recursive: true, force: true });
      fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(clone, 'node_modules'));
    }
    const prefix = tmpDir('ckpt-prefix-');

    // What `npm ci` runs last. (Checked before installing: linking the bin makes it executable
    // in the folder, which would hide a build that does not.)
    const built = await npm(['run', 'prepare'], clone);
    expect(built.code, built.stdout + built.stderr).toBe(0);
    const bin = path.join(clone, 'dist', 'cli', 'main.js');
    expect((fs.statSync(bin).mode & 0o777).toString(8)).toBe('755');
    // Runnable from the checkout itself, by its shebang.
    const direct = await exec(bin, ['--version'], { cwd: clone });
    expect(direct.code, direct.stderr).toBe(0);
    expect(direct.stdout.trim()).toBe(VERSION);

    // What `npm pack` puts in the tarball (built above: no scripts).
    const pack = await npm(['pack', '--dry-run', '--json', '--ignore-scripts'], clone);
    expect(pack.code, pack.stderr).toBe(0);
    const [listing] = JSON.parse(pack.stdout) as { filename: string; files: { path: string; mode: number }[] }[];
    expect(listing!.filename).toBe(`ckpt-${VERSION}.tgz`);
    const entry = listing!.files.find((f) => f.path === 'dist/cli/main.js');
    expect(entry, 'dist/cli/main.js in the package').toBeDefined();
    expect((entry!.mode & 0o777).toString(8)).toBe('755');

    // `npm install -g .` would run prepare again (one more build); built already, so no scripts.
    const install = await npm(['install', '-g', '--ignore-scripts', '--prefix', prefix, clone], clone);
    expect(install.code, install.stdout + install.stderr).toBe(0);

    const installed = path.join(prefix, 'bin', 'ckpt');
    const version = await exec(installed, ['--version'], { cwd: prefix });
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(VERSION);
    const help = await exec(installed, ['--help'], { cwd: prefix });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: ckpt /m);
  }, 300_000);
});
