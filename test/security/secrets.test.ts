/**
 * The one secret a ckpt configuration holds is the password in a PostgreSQL URL (in the file,
 * in an environment variable named by `urlEnv`, or given with --database). Whatever the
 * command and whatever goes wrong (bad URL, bad config, unreachable server, debug logging),
 * it must never appear in anything ckpt prints.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/daemon.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(() => cleanupTmpDirs());

interface Out {
  args: string;
  code: number | null;
  text: string;
}

/** Runs the CLI with a time limit (a daemon that keeps retrying a server is stopped with SIGTERM). */
function ckpt(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, limitMs = 15_000): Promise<Out> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => (text += b.toString()));
    const t = setTimeout(() => child.kill('SIGTERM'), limitMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ args: args.join(' '), code, text });
    });
  });
}

function workspace(config: Record<string, unknown>): { dir: string; config: string } {
  const dir = tmpDir('ckpt-secrets-');
  fs.mkdirSync(path.join(dir, 'inbox'));
  const file = path.join(dir, 'ckpt.config.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ watch: [{ dir: 'inbox' }], handler: { command: ['true', '{path}'] }, log: { level: 'trace', format: 'json' }, ...config }, null, 2),
  );
  return { dir, config: file };
}

/**
 * The paths that print the database setting or its errors: the daemon (trace logging, --once),
 * a read-only command, and doctor (which reports on the database). The other subcommands load
 * the config and open the store through the same two functions as `status`.
 */
const COMMANDS = [['run', '--once', '--log-level', 'trace'], ['status', '--json'], ['doctor']];

/** Runs the jobs three at a time: a dozen node processes at once on two cores only slows all of them. */
async function limited(jobs: (() => Promise<Out>)[]): Promise<Out[]> {
  const outs: Out[] = [];
  for (let i = 0; i < jobs.length; i += 3) outs.push(...(await Promise.all(jobs.slice(i, i + 3).map((j) => j()))));
  return outs;
}

function leaks(outs: Out[], secrets: string[]): string[] {
  const found: string[] = [];
  for (const o of outs) for (const s of secrets) if (o.text.includes(s)) found.push(`\`ckpt ${o.args}\` (exit ${o.code}) printed ${s}:\n${o.text.slice(0, 600)}`);
  return found;
}

describe('secrets are never printed', () => {
  it('a password in the config file URL (userinfo and query), through the daemon, status and doctor', async () => {
    const secrets = ['S3cr3t-userinfo', 'S3cr3t-query', 'S3cr3t-ssl'];
    const ws = workspace({ database: 'postgres://ckpt:S3cr3t-userinfo@127.0.0.1:1/ckpt?password=S3cr3t-query&sslpassword=S3cr3t-ssl' });
    const outs = await limited(COMMANDS.map((c) => () => ckpt([...c, '--config', ws.config], ws.dir)));
    expect(leaks(outs, secrets)).toEqual([]);
    // They did run to an end of their own, and said something (most likely about the server).
    expect(outs.filter((o) => o.code === null || o.text.length === 0).map((o) => `${o.args}: exit ${o.code}, ${o.text.length} bytes`)).toEqual([]);
  });

  it('a password in the environment variable named by urlEnv, and one given with --database', async () => {
    const ws = workspace({ database: { urlEnv: 'CKPT_TEST_PG_URL' } });
    const env = { CKPT_TEST_PG_URL: 'postgresql://ckpt:S3cr3t-env@127.0.0.1:1/ckpt' };
    const outs = await limited([
      ...COMMANDS.slice(0, 2).map((c) => () => ckpt([...c, '--config', ws.config], ws.dir, env)),
      () => ckpt(['run', '--once', '--config', ws.config, '--database', 'postgres://ckpt:S3cr3t-flag@127.0.0.1:1/ckpt'], ws.dir),
    ]);
    expect(leaks(outs, ['S3cr3t-env', 'S3cr3t-flag'])).toEqual([]);
  });

  it('configuration errors that quote the database setting do not quote its password', async () => {
    const cases = [
      // A URL that does not parse (the port), with the password before the error.
      workspace({ database: 'postgres://ckpt:S3cr3t-badport@db.example:notaport/ckpt' }),
      // A good URL next to a bad key: the error is about the key, the URL must not be echoed.
      workspace({ database: 'postgres://ckpt:S3cr3t-badkey@127.0.0.1:1/ckpt', concurrency: 'many' }),
      // An unknown key inside the database object.
      workspace({ database: { url: 'postgres://ckpt:S3cr3t-badobj@127.0.0.1:1/ckpt', sslmode: 'require' } }),
      // A scheme that is not PostgreSQL, with userinfo.
      workspace({ database: 'mysql://ckpt:S3cr3t-scheme@127.0.0.1/ckpt' }),
    ];
    const outs = await limited(cases.map((ws) => () => ckpt(['run', '--config', ws.config], ws.dir)));
    for (const o of outs) expect(o.code, o.text).toBe(78);
    expect(leaks(outs, ['S3cr3t-badport', 'S3cr3t-badkey', 'S3cr3t-badobj', 'S3cr3t-scheme'])).toEqual([]);
  });
});
