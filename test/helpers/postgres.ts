/**
 * A throwaway PostgreSQL cluster for tests and benchmarks: initdb into a temp folder, a server
 * on 127.0.0.1 and a free port with its unix socket in the same folder, stopped and removed at
 * the end. One cluster per test file (vitest runs files in separate processes): initdb + start
 * took 1.5 s here (initdb 1.2 s, start 0.3 s), cheap enough not to share a server across files
 * and cleaner than a global setup that every other test file would pay for.
 *
 * PostgreSQL refuses to run as root and CI runs as root: then the cluster belongs to the
 * `postgres` user that Debian's package creates, and every server command runs through
 * `runuser -u postgres --`.
 *
 * Where no server can be started: outside CI (CI != 'true') the tests are skipped with the
 * reason printed; in CI it is a failure.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileP = promisify(execFile);

export const PG_USER = 'ckpt';
export const PG_PASSWORD = 'test-secret-7f3a';

export interface PgCluster {
  /** The cluster's folder (data, socket, log); removed by stop(). */
  readonly dir: string;
  readonly port: number;
  readonly host: '127.0.0.1';
  readonly binDir: string;
  /** A URL for `db` (default "postgres") with the test password in it. */
  url(db?: string, opts?: { password?: string; user?: string }): string;
  /** Run SQL as the superuser (one-off connection). */
  sql(text: string, values?: unknown[]): Promise<pg.QueryResult>;
  /** pg_ctl stop: `fast` sends 57P01 to every session, `immediate` is a crash. */
  stopServer(mode?: 'fast' | 'immediate'): Promise<void>;
  startServer(): Promise<void>;
  /** Stop the server and remove the folder (idempotent). */
  destroy(): Promise<void>;
  /** The server log, for failure messages. */
  log(): string;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Where initdb, pg_ctl and postgres live: $CKPT_PG_BINDIR, the PATH, or Debian's folders. */
export function findPgBinDir(): string | null {
  const env = process.env.CKPT_PG_BINDIR;
  if (env && fs.existsSync(path.join(env, 'initdb'))) return env;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const initdb = path.join(dir, 'initdb');
    if (dir && fs.existsSync(initdb)) {
      // /usr/local/bin/initdb here is a link into /usr/lib/postgresql/15/bin: use the real folder
      // so initdb, pg_ctl and postgres are sure to be of the same version.
      const real = path.dirname(fs.realpathSync(initdb));
      if (fs.existsSync(path.join(real, 'pg_ctl')) && fs.existsSync(path.join(real, 'postgres'))) return real;
    }
  }
  const debian = '/usr/lib/postgresql';
  if (fs.existsSync(debian)) {
    const versions = fs
      .readdirSync(debian)
      .filter((v) => fs.existsSync(path.join(debian, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(debian, versions[0], 'bin');
  }
  return null;
}

interface RunAs {
  uid: number;
  gid: number;
  /** argv prefix: [] or ['runuser', '-u', 'postgres', '--']. */
  prefix: string[];
}

function runAs(): RunAs | string {
  if (!isRoot()) return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, prefix: [] };
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim();
  } catch {
    return 'running as root and there is no "postgres" user to run the server as (apt-get install postgresql creates it)';
  }
  const [, , uid, gid] = line.split(':');
  if (spawnSync('runuser', ['--help'], { stdio: 'ignore' }).error) return 'running as root and runuser is missing';
  return { uid: Number(uid), gid: Number(gid), prefix: ['runuser', '-u', 'postgres', '--'] };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set<PgCluster>();
let exitHookInstalled = false;

/** Last resort when a test process ends without its afterAll: no server outlives the tests. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      const as = runAs();
      const prefix = typeof as === 'string' ? [] : as.prefix;
      const argv = [...prefix, path.join(c.binDir, 'pg_ctl'), 'stop', '-m', 'immediate', '-w', '-D', path.join(c.dir, 'data')];
      spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore', cwd: c.dir });
      fs.rmSync(c.dir, { recursive: true, force: true });
    }
  });
}

/**
 * Start a fresh cluster. Returns a reason string when this machine cannot run one (no
 * binaries, no user to run them as); throws when it should have worked and did not.
 */
export interface StartOptions {
  /**
   * Keep PostgreSQL's crash safety (fsync, full_page_writes, synchronous_commit on): for
   * benchmarks that should look like a real server. Tests leave it off.
   */
  durable?: boolean;
}

export async function startPgCluster(opts: StartOptions = {}): Promise<PgCluster | string> {
  const binDir = findPgBinDir();
  if (!binDir) return 'no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: apt-get install postgresql, or set CKPT_PG_BINDIR';
  const as = runAs();
  if (typeof as === 'string') return as;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  if (isRoot()) fs.chownSync(dir, as.uid, as.gid);
  const exec = async (bin: string, args: string[]) => {
    const argv = [...as.prefix, path.join(binDir, bin), ...args];
    // cwd: initdb fails when it cannot read the current folder (root's, as the postgres user).
    return execFileP(argv[0]!, argv.slice(1), { cwd: dir, env: { ...process.env, LC_ALL: 'C' } });
  };

  let port = 0;
  const cluster: PgCluster = {
    dir,
    host: '127.0.0.1',
    binDir,
    get port() {
      return port;
    },
    url(db = 'postgres', o = {}) {
      return `postgres://${o.user ?? PG_USER}:${encodeURIComponent(o.password ?? PG_PASSWORD)}@127.0.0.1:${port}/${db}`;
    },
    async sql(text, values) {
      const c = new pg.Client({ connectionString: cluster.url() });
      await c.connect();
      try {
        return await c.query(text, values);
      } finally {
        await c.end();
      }
    },
    async stopServer(mode = 'fast') {
      await exec('pg_ctl', ['stop', '-w', '-t', '30', '-m', mode, '-D', data]);
    },
    async startServer() {
      // fsync and synchronous_commit off: a throwaway cluster need not survive a power cut,
      // and every commit then costs no disk flush (a test suite's worth of them on 2 cores).
      const settings = [
        `-p ${port}`,
        `-k ${dir}`,
        '-c listen_addresses=127.0.0.1',
        ...(opts.durable ? [] : ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off']),
        '-c max_connections=60',
        '-c shared_buffers=32MB',
      ].join(' ');
      await exec('pg_ctl', ['start', '-w', '-t', '30', '-D', data, '-l', logFile, '-o', settings]);
    },
    async destroy() {
      if (!live.delete(cluster)) return;
      await exec('pg_ctl', ['stop', '-w', '-t', '30', '-m', 'immediate', '-D', data]).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    log() {
      try {
        return fs.readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };

  try {
    const pw = path.join(dir, 'pw');
    fs.writeFileSync(pw, `${PG_PASSWORD}\n`, { mode: 0o600 });
    if (isRoot()) fs.chownSync(pw, as.uid, as.gid);
    // Password over TCP, so tests see real authentication (and a wrong password); trust on the
    // socket inside the cluster's own 0700 folder.
    await exec('initdb', ['-D', data, '-U', PG_USER, `--pwfile=${pw}`, '--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    fs.rmSync(pw);
    live.add(cluster);
    installExitHook();
    // Another process may take the port between freePort() and the server's bind: try again.
    for (let i = 1; ; i++) {
      port = await freePort();
      try {
        await cluster.startServer();
        break;
      } catch (err) {
        if (i >= 5) throw err;
      }
    }
  } catch (err) {
    const log = cluster.log();
    await cluster.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`could not start a throwaway PostgreSQL cluster with ${binDir}: ${msg}\n${log}`);
  }
  return cluster;
}

/**
 * For a test file: a cluster, or null (with the reason printed) when none can be started
 * outside CI. In CI (CI=true) a missing server is an error, so a broken set-up cannot pass
 * as "skipped".
 */
export async function pgClusterForTests(what: string): Promise<PgCluster | null> {
  const c = await startPgCluster();
  if (typeof c !== 'string') return c;
  if (process.env.CI === 'true') throw new Error(`${what}: PostgreSQL tests cannot run in CI: ${c}`);
  console.warn(`[skip] ${what}: PostgreSQL tests skipped: ${c}`);
  return null;
}

let schemaCounter = 0;
/** A schema name no other test in this process has used. */
export function freshSchema(prefix = 't'): string {
  schemaCounter++;
  return `${prefix}_${process.pid}_${schemaCounter}`;
}
