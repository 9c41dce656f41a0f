/**
 * The configuration loader, one rule at a time, against real config files in real temp folders.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ENV_VARS } from '../../src/config/env.js';
import { ConfigError, EX_CONFIG } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { redactConfig, redactSecrets } from '../../src/config/redact.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { configError } from '../helpers/config-error.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const NAME = 'ckpt.config.json';

/** A folder holding `inbox/` and a config file with `content` (merged over a minimal valid one). */
function setup(content: Record<string, unknown> = {}, opts: { raw?: string } = {}): string {
  const dir = tmpDir('ckpt-config-');
  fs.mkdirSync(path.join(dir, 'inbox'));
  const base = { database: 'var/ckpt.db', watch: [{ dir: 'inbox' }], handler: { command: ['node', 'h.mjs', '{path}'] } };
  fs.writeFileSync(path.join(dir, NAME), opts.raw ?? JSON.stringify({ ...base, ...content }, null, 2));
  return dir;
}

function load(dir: string, opts: Parameters<typeof loadConfig>[1] = {}): ResolvedConfig {
  return loadConfig(NAME, { cwd: dir, env: {}, ...opts });
}

describe('defaults', () => {
  it('fills every default and makes paths absolute', () => {
    const dir = setup();
    const cfg = load(dir);
    expect(cfg).toEqual({
      configPath: path.join(dir, NAME),
      configDir: dir,
      database: { kind: 'sqlite', path: path.join(dir, 'var/ckpt.db') },
      watch: [
        {
          dir: path.join(dir, 'inbox'),
          include: [],
          exclude: [],
          fileType: 'inbox',
          poll: 'auto',
          readyMarker: null,
          recursive: true,
          readiness: 'auto',
          allowOtherLedgers: false,
        },
      ],
      handler: { kind: 'command', command: ['node', 'h.mjs', '{path}'], timeoutMs: 600_000, killGraceMs: 5_000, cwd: dir },
      concurrency: 4,
      leaseMs: 30_000,
      stableMs: 2_000,
      rescanMs: 60_000,
      retry: { maxRetries: 3, baseDelayMs: 1_000, maxDelayMs: 300_000 },
      onSuccess: { kind: 'keep' },
      onDead: { kind: 'keep' },
      onChange: 'reprocess',
      shutdownGraceMs: 10_000,
      lockTimeoutMs: 5_000,
      log: { level: 'info', format: 'auto' },
      http: null,
      workerId: undefined,
      fileMode: 0o600,
      group: undefined,
      createDirs: false,
      pathPrefixes: [],
      retention: null,
    } satisfies ResolvedConfig);
  });

  it('keeps values the file sets, and fills the rest of a partly given object', () => {
    const dir = setup({ retry: { maxRetries: 0 }, log: { level: 'debug' }, http: { port: 9464 }, fileMode: '0640', group: 1000 });
    const cfg = load(dir);
    expect(cfg.retry).toEqual({ maxRetries: 0, baseDelayMs: 1_000, maxDelayMs: 300_000 });
    expect(cfg.log).toEqual({ level: 'debug', format: 'auto' });
    expect(cfg.http).toEqual({ port: 9464, host: '127.0.0.1' });
    expect(cfg.fileMode).toBe(0o640);
    expect(cfg.group).toBe('1000');
  });
});

describe('retention', () => {
  it('reads each window as the CLI reads a duration; a window left out keeps that kind', () => {
    const cfg = load(setup({ retention: { completed: '30d', dead: '1w2d', tombstones: '12h' } }));
    expect(cfg.retention).toEqual({ completedMs: 30 * 86_400_000, deadMs: 9 * 86_400_000, tombstonesMs: 12 * 3_600_000 });
    expect(load(setup({ retention: { completed: '90m' } })).retention).toEqual({ completedMs: 5_400_000, deadMs: null, tombstonesMs: null });
  });
});

describe('paths', () => {
  it('resolves relative paths against the config file folder, not the current folder', () => {
    const root = tmpDir('ckpt-config-');
    const dir = path.join(root, 'conf');
    fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
    const absIn = path.join(tmpDir('ckpt-abs-'), 'abs-in');
    fs.writeFileSync(
      path.join(dir, NAME),
      JSON.stringify({
        database: 'var/ckpt.db',
        watch: [{ dir: 'inbox' }, { dir: absIn }],
        handler: { module: './handler.mjs' },
        onSuccess: { moveTo: 'done' },
        onDead: { moveTo: '../dead-letters' },
        createDirs: true,
      }),
    );
    fs.writeFileSync(path.join(dir, 'handler.mjs'), 'export default async () => {};\n');
    const elsewhere = tmpDir('ckpt-cwd-');
    const cfg = loadConfig(path.join(dir, NAME), { cwd: elsewhere, env: {} });
    expect(cfg.configDir).toBe(dir);
    expect(cfg.database).toEqual({ kind: 'sqlite', path: path.join(dir, 'var', 'ckpt.db') });
    expect(cfg.watch.map((w) => w.dir)).toEqual([path.join(dir, 'inbox'), absIn]);
    expect(cfg.onSuccess).toEqual({ kind: 'move', dir: path.join(dir, 'done') });
    expect(cfg.onDead).toEqual({ kind: 'move', dir: path.join(root, 'dead-letters') });
    expect(cfg.handler).toEqual({ kind: 'module', module: path.join(dir, 'handler.mjs'), timeoutMs: 600_000 });
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });

  it('a config path relative to cwd is found, and messages name it as given', () => {
    const dir = setup({ concurrency: 0 });
    const err = configError(() => loadConfig(NAME, { cwd: dir, env: {} }));
    expect(err.message).toBe('ckpt.config.json: concurrency: expected an integer >= 1, got 0');
  });

  it('command argv is kept as written; the handler runs in the config folder', () => {
    const dir = setup({ handler: { command: ['./bin/load', '--in', '{path}'], killGraceMs: 100 } });
    const cfg = load(dir);
    expect(cfg.handler).toEqual({ kind: 'command', command: ['./bin/load', '--in', '{path}'], timeoutMs: 600_000, killGraceMs: 100, cwd: dir });
  });

  it('fileType defaults to the folder basename', () => {
    const dir = setup({ watch: [{ dir: 'inbox/' }, { dir: 'inbox', fileType: 'orders' }] });
    expect(load(dir).watch.map((w) => w.fileType)).toEqual(['inbox', 'orders']);
  });
});

describe('shape errors name the file, the key and what was expected', () => {
  it.each([
    [{ concurrency: 'four' }, 'ckpt.config.json: concurrency: expected an integer >= 1, got "four"'],
    [{ concurrency: 2.5 }, 'ckpt.config.json: concurrency: expected an integer >= 1, got 2.5'],
    [{ concurrency: 100_000 }, 'ckpt.config.json: concurrency: expected an integer <= 256, got 100000'],
    [{ leaseMs: 3e9 }, 'ckpt.config.json: leaseMs: expected an integer <= 2147483647 (milliseconds), got 3000000000'],
    [{ databse: 'x.db' }, 'ckpt.config.json: unknown key "databse" (did you mean "database"?)'],
    [{ watch: [{ dir: 'inbox', recursiv: false }] }, 'ckpt.config.json: watch[0]: unknown key "recursiv" (did you mean "recursive"?)'],
    [{ watch: [] }, 'ckpt.config.json: watch: expected a non-empty list of folders to watch, got []'],
    [{ watch: [{}] }, 'ckpt.config.json: watch[0].dir: missing: expected a path (relative to the config file, or absolute)'],
    [{ watch: [{ dir: 'inbox', poll: 'yes' }] }, 'ckpt.config.json: watch[0].poll: expected true, false or "auto", got "yes"'],
    [{ watch: [{ dir: 'inbox', include: '*.csv' }] }, 'ckpt.config.json: watch[0].include: expected a list of glob patterns, e.g. ["**/*.csv"], got "*.csv"'],
    [{ onDead: 'del' }, 'ckpt.config.json: onDead: expected "keep", "delete" or {"moveTo": "folder"}, got "del"'],
    [{ onSuccess: { movTo: 'x' } }, 'ckpt.config.json: onSuccess.moveTo: missing: expected a path (relative to the config file, or absolute)\nckpt.config.json: onSuccess: unknown key "movTo" (did you mean "moveTo"?)'],
    [{ onChange: 'skip' }, 'ckpt.config.json: onChange: expected one of "reprocess", "ignore", got "skip"'],
    [{ log: { level: 'verbose' } }, 'ckpt.config.json: log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "verbose"'],
    [{ retry: { baseDelayMs: 10, maxDelayMs: 5 } }, 'ckpt.config.json: retry.maxDelayMs: expected at least baseDelayMs (10), got 5'],
    [{ fileMode: 600 }, 'ckpt.config.json: fileMode: expected an octal permission string such as "0600" (a JSON number would be read as decimal), got 600'],
    [{ fileMode: '0400' }, 'ckpt.config.json: fileMode: expected a mode that lets the owner read and write (ckpt must open its own database), e.g. "0600"'],
    [{ http: { host: 'localhost' } }, 'ckpt.config.json: http.port: missing: expected an integer >= 0'],
    [{ handler: { command: [] } }, 'ckpt.config.json: handler.command: expected a non-empty argv list such as ["node", "handler.mjs", "{path}"], got []'],
    [{ handler: { command: ['x', '{file}'] } }, 'ckpt.config.json: handler.command[1]: unknown placeholder {file} (known: {path})'],
    [{ handler: { command: ['x'], module: 'm.mjs' } }, 'ckpt.config.json: handler: expected exactly one of "command" (an argv list) or "module" (a path to an ES module)'],
    [{ handler: { module: 'm.mjs', killGraceMs: 5 } }, 'ckpt.config.json: handler.killGraceMs: applies only to a "command" handler (a module runs inside the daemon and cannot be killed)'],
    [{ database: 7 }, 'ckpt.config.json: database: expected a database file path, a postgres:// URL, or {"url": ...} / {"urlEnv": ...}, got 7'],
    [{ database: { uri: 'x' } }, 'ckpt.config.json: database: unknown key "uri" (did you mean "url"?)\nckpt.config.json: database: expected exactly one of "url" or "urlEnv"'],
    [{ database: { url: 'postgres://h/db', schema: 'my-schema' } }, 'ckpt.config.json: database.schema: expected a PostgreSQL schema name (letters, digits, _; at most 63), got "my-schema"'],
    [{ database: 'mysql://u:pw@h/db' }, 'ckpt.config.json: database: expected a postgres:// or postgresql:// URL, got "mysql://u:***@h/db"'],
    [{ retention: { completed: '30' } }, 'ckpt.config.json: retention.completed: expected a duration such as 30s, 15m, 2h or 7d, got "30" (add a unit: s, m, h, d)'],
    [{ retention: { dead: '3 days' } }, 'ckpt.config.json: retention.dead: expected a duration such as 30s, 15m, 2h or 7d, got "3 days"'],
    [{ retention: { tombstones: 30 } }, 'ckpt.config.json: retention.tombstones: expected a duration such as "30d" or "12h", got 30'],
    [{ retention: { completed: '0d' } }, 'ckpt.config.json: retention.completed: expected a duration above 0, got "0d"'],
    [{ retention: { complete: '30d' } }, 'ckpt.config.json: retention: unknown key "complete" (did you mean "completed"?)'],
  ])('%j', (content, message) => {
    const err = configError(() => load(setup(content)));
    expect(err.message).toBe(message);
    expect(err.exitCode).toBe(78);
  });

  it('a handler command may use ${VAR} in a shell script without it being taken for a placeholder', () => {
    const dir = setup({ handler: { command: ['sh', '-c', 'cat "$1" > ${HOME}/x', 'sh', '{path}'] } });
    expect(load(dir).handler).toMatchObject({ kind: 'command' });
  });

  it('a top level that is not an object', () => {
    for (const raw of ['[]', '"x"', 'null', '42']) {
      const err = configError(() => load(setup({}, { raw })));
      expect(err.message).toMatch(/^ckpt\.config\.json: expected a JSON object with the ckpt settings/);
    }
  });

  it('the database may come from the environment only, but must come from somewhere', () => {
    const dir = setup();
    const file = path.join(dir, NAME);
    const { database: _drop, ...rest } = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(file, JSON.stringify(rest));
    expect(configError(() => load(dir)).message).toBe(
      'ckpt.config.json: database: missing: set "database" in the file, CKPT_DATABASE, or --database',
    );
    expect(load(dir, { env: { CKPT_DATABASE: '/tmp/x.db' } }).database).toEqual({ kind: 'sqlite', path: '/tmp/x.db' });
  });
});

describe('the file itself', () => {
  it('invalid JSON names the line and column', () => {
    const err = configError(() => load(setup({}, { raw: '{\n  "database": "x.db",\n  "watch": [\n  ]\n  "handler": {}\n}' })));
    expect(err.message).toBe('ckpt.config.json: not valid JSON at line 5, column 3: expected "," or "}", found "\\""');
  });

  it.each([
    ['{"a": 1,}', 'line 1, column 9: trailing comma before "}" is not allowed in JSON'],
    ['{\n  // note\n}', 'line 2, column 3: comments are not allowed in JSON'],
    ["{'a': 1}", 'line 1, column 2: strings must use double quotes (") in JSON'],
    ['{"a": "x', 'line 1, column 7: string is never closed (missing ")'],
    ['{"a": 1} x', 'line 1, column 10: expected the end of the file after the JSON value, found "x"'],
  ])('%j', (raw, where) => {
    expect(configError(() => load(setup({}, { raw }))).message).toBe(`ckpt.config.json: not valid JSON at ${where}`);
  });

  it('an empty file, a missing file, a folder', () => {
    expect(configError(() => load(setup({}, { raw: ' \n' }))).message).toBe('ckpt.config.json: the file is empty; expected a JSON object');
    const dir = tmpDir('ckpt-config-');
    expect(configError(() => loadConfig('nope.json', { cwd: dir })).message).toBe(
      `nope.json: config file not found (looked for ${path.join(dir, 'nope.json')}; pass --config PATH)`,
    );
    fs.mkdirSync(path.join(dir, 'ckpt.config.json'));
    expect(configError(() => load(dir)).message).toMatch(/is a folder; expected the path of a JSON config file$/);
  });

  it('a UTF-8 byte-order mark is accepted', () => {
    const dir = setup();
    const file = path.join(dir, NAME);
    fs.writeFileSync(file, `\uFEFF${fs.readFileSync(file, 'utf8')}`);
    expect(load(dir).concurrency).toBe(4);
  });
});

describe('folders', () => {
  it('a missing watched folder is an error', () => {
    const dir = setup({ watch: [{ dir: 'inbox' }, { dir: 'x/y' }] });
    expect(configError(() => load(dir)).message).toBe(
      `ckpt.config.json: watch[1].dir: folder ${path.join(dir, 'x/y')} does not exist (create it, or set "createDirs": true)`,
    );
  });

  it('a missing moveTo folder is an error', () => {
    const dir = setup({ onDead: { moveTo: 'dead' } });
    expect(configError(() => load(dir)).message).toBe(
      `ckpt.config.json: onDead.moveTo: folder ${path.join(dir, 'dead')} does not exist (create it, or set "createDirs": true)`,
    );
  });

  it('fallbackDir: relative to the config file, created when missing', () => {
    const dir = setup({ fallbackDir: 'state/fallback' });
    const cfg = load(dir);
    expect(cfg.fallbackDir).toBe(path.join(dir, 'state/fallback'));
    expect(fs.statSync(path.join(dir, 'state/fallback')).isDirectory()).toBe(true);
    expect(load(setup()).fallbackDir).toBeUndefined();
  });

  it('fallbackDir that is a file is an error naming the key', () => {
    const dir = setup({ fallbackDir: 'fb' });
    fs.writeFileSync(path.join(dir, 'fb'), 'x');
    expect(configError(() => load(dir)).message).toContain('fallbackDir');
  });

  it('a watched path that is a file is an error', () => {
    const dir = setup({ watch: [{ dir: 'file.txt' }] });
    fs.writeFileSync(path.join(dir, 'file.txt'), 'x');
    expect(configError(() => load(dir)).message).toBe(`ckpt.config.json: watch[0].dir: ${path.join(dir, 'file.txt')} is not a folder`);
  });

  it('createDirs creates missing watch and moveTo folders', () => {
    const dir = setup({
      watch: [{ dir: 'a/b/in' }],
      onSuccess: { moveTo: 'out/done' },
      onDead: { moveTo: 'out/dead' },
      createDirs: true,
    });
    const cfg = load(dir);
    expect(cfg.createDirs).toBe(true);
    for (const sub of ['a/b/in', 'out/done', 'out/dead', 'var']) {
      expect(fs.statSync(path.join(dir, sub)).isDirectory()).toBe(true);
    }
  });

  it("the database's folder is created even without createDirs", () => {
    const dir = setup({ database: 'state/deep/ckpt.db' });
    load(dir);
    expect(fs.statSync(path.join(dir, 'state/deep')).isDirectory()).toBe(true);
    expect(fs.existsSync(path.join(dir, 'state/deep/ckpt.db'))).toBe(false);
  });

  it('a database path that is a folder is an error', () => {
    const dir = setup({ database: 'inbox2' });
    fs.mkdirSync(path.join(dir, 'inbox2'));
    expect(configError(() => load(dir)).message).toBe(
      `ckpt.config.json: database: ${path.join(dir, 'inbox2')} is a folder; expected the path of the database file`,
    );
  });

  it('nothing is created when the config is wrong elsewhere', () => {
    const dir = setup({ database: 'state/ckpt.db', watch: [{ dir: 'new-in' }], createDirs: true, concurrency: -1 });
    configError(() => load(dir));
    expect(fs.existsSync(path.join(dir, 'state'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'new-in'))).toBe(false);
  });

  it('a moveTo folder inside a watched folder is refused (moved files would come back)', () => {
    const dir = setup({ onSuccess: { moveTo: 'inbox/done' }, createDirs: true });
    expect(configError(() => load(dir)).message).toBe(
      `ckpt.config.json: onSuccess.moveTo: folder ${path.join(dir, 'inbox/done')} is inside watched folder watch[0].dir (${path.join(dir, 'inbox')}): moved files would be picked up again; move them elsewhere`,
    );
    // Not watched recursively: a sub-folder is out of sight, so it is fine.
    const ok = setup({ watch: [{ dir: 'inbox', recursive: false }], onSuccess: { moveTo: 'inbox/done' }, createDirs: true });
    expect(load(ok).onSuccess).toEqual({ kind: 'move', dir: path.join(ok, 'inbox/done') });
  });

  it('a database inside a watched folder is refused', () => {
    const dir = setup({ database: 'inbox/ckpt.db' });
    expect(configError(() => load(dir)).message).toMatch(/^ckpt\.config\.json: database: .*inbox\/ckpt\.db is inside watched folder watch\[0\]\.dir/);
  });

  it('a module handler that does not exist is an error', () => {
    const dir = setup({ handler: { module: './missing.mjs' } });
    expect(configError(() => load(dir)).message).toBe(`ckpt.config.json: handler.module: file ${path.join(dir, 'missing.mjs')} does not exist`);
  });
});

describe('precedence: defaults < file < environment < flags', () => {
  it('the environment overrides the file, flags override the environment', () => {
    const dir = setup({ concurrency: 2, log: { level: 'warn' }, workerId: 'from-file', http: { port: 1000, host: '0.0.0.0' } });
    const fileOnly = load(dir);
    expect([fileOnly.concurrency, fileOnly.log.level, fileOnly.workerId, fileOnly.http]).toEqual([2, 'warn', 'from-file', { port: 1000, host: '0.0.0.0' }]);

    const env = { CKPT_CONCURRENCY: '3', CKPT_LOG_LEVEL: 'debug', CKPT_WORKER_ID: 'from-env', CKPT_HTTP_PORT: '2000', CKPT_DATABASE: 'env.db' };
    const withEnv = load(dir, { env });
    expect([withEnv.concurrency, withEnv.log.level, withEnv.workerId, withEnv.http]).toEqual([3, 'debug', 'from-env', { port: 2000, host: '0.0.0.0' }]);
    // A relative database path from outside the file is relative to the current folder.
    expect(withEnv.database).toEqual({ kind: 'sqlite', path: path.join(dir, 'env.db') });

    const cwd = tmpDir('ckpt-cwd-');
    const withFlags = loadConfig(path.join(dir, NAME), {
      cwd,
      env,
      overrides: { concurrency: '5', logLevel: 'error', workerId: 'from-flag', httpPort: 3000, database: 'flag.db', logFormat: 'json' },
    });
    expect([withFlags.concurrency, withFlags.log, withFlags.workerId, withFlags.http]).toEqual([
      5,
      { level: 'error', format: 'json' },
      'from-flag',
      { port: 3000, host: '0.0.0.0' },
    ]);
    expect(withFlags.database).toEqual({ kind: 'sqlite', path: path.join(cwd, 'flag.db') });
  });

  it('every documented environment variable is read', () => {
    const dir = setup();
    const values: Record<string, string> = {
      CKPT_DATABASE: 'postgres://h/db',
      CKPT_LOG_LEVEL: 'trace',
      CKPT_CONCURRENCY: '7',
      CKPT_WORKER_ID: 'w-7',
      CKPT_HTTP_PORT: '9464',
    };
    expect(ENV_VARS.map((v) => v.name).sort()).toEqual(Object.keys(values).sort());
    const cfg = load(dir, { env: values });
    expect(cfg.database).toEqual({ kind: 'postgres', url: 'postgres://h/db', schema: 'public', urlEnv: null });
    expect(cfg.log.level).toBe('trace');
    expect(cfg.concurrency).toBe(7);
    expect(cfg.workerId).toBe('w-7');
    expect(cfg.http).toEqual({ port: 9464, host: '127.0.0.1' });
  });

  it('an empty environment variable counts as unset', () => {
    const dir = setup({ concurrency: 2 });
    expect(load(dir, { env: { CKPT_CONCURRENCY: '', CKPT_DATABASE: '' } }).concurrency).toBe(2);
  });

  it('bad values are reported under the variable or flag name', () => {
    const dir = setup();
    expect(configError(() => load(dir, { env: { CKPT_CONCURRENCY: 'four' } })).message).toBe(
      'CKPT_CONCURRENCY: expected an integer >= 1, got "four"',
    );
    expect(configError(() => load(dir, { env: { CKPT_HTTP_PORT: '70000' } })).message).toBe(
      'CKPT_HTTP_PORT: expected an integer <= 65535, got 70000',
    );
    expect(configError(() => load(dir, { env: { CKPT_LOG_LEVEL: 'loud' } })).message).toMatch(/^CKPT_LOG_LEVEL: expected one of "fatal"/);
    expect(configError(() => load(dir, { overrides: { concurrency: '0' } })).message).toBe(
      '--concurrency: expected an integer >= 1, got 0',
    );
    expect(configError(() => load(dir, { overrides: { database: 'sqlite://x' } })).message).toBe(
      '--database: expected a postgres:// or postgresql:// URL, got "sqlite://x"',
    );
  });
});

describe('PostgreSQL settings (kept for the store that arrives later)', () => {
  it('a postgres URL string is kept as written', () => {
    const url = 'postgresql://ckpt:s3cret@db.example:5432/ingest?sslmode=require';
    expect(load(setup({ database: url })).database).toEqual({ kind: 'postgres', url, schema: 'public', urlEnv: null });
  });

  it('an object with url and schema, or urlEnv read from the environment', () => {
    expect(load(setup({ database: { url: 'postgres://h/db', schema: 'ckpt' } })).database).toEqual({
      kind: 'postgres',
      url: 'postgres://h/db',
      schema: 'ckpt',
      urlEnv: null,
    });
    const dir = setup({ database: { urlEnv: 'CKPT_PG_URL' } });
    expect(load(dir, { env: { CKPT_PG_URL: 'postgres://u:p@h/db' } }).database).toEqual({
      kind: 'postgres',
      url: 'postgres://u:p@h/db',
      schema: 'public',
      urlEnv: 'CKPT_PG_URL',
    });
    expect(configError(() => load(dir)).message).toBe(
      'ckpt.config.json: database.urlEnv: environment variable CKPT_PG_URL is not set (it should hold the postgres:// URL)',
    );
    expect(configError(() => load(dir, { env: { CKPT_PG_URL: 'x.db' } })).message).toBe(
      'ckpt.config.json: database.urlEnv: environment variable CKPT_PG_URL does not hold a postgres:// or postgresql:// URL',
    );
  });

  it('no folder is created for a PostgreSQL database', () => {
    const dir = setup({ database: 'postgres://h/var/db' });
    load(dir);
    expect(fs.readdirSync(dir).sort()).toEqual(['ckpt.config.json', 'inbox']);
  });
});

describe('the result', () => {
  it('is deeply frozen', () => {
    const dir = setup({ watch: [{ dir: 'inbox', include: ['*.csv'] }], http: { port: 1 } });
    const cfg = load(dir);
    const frozen = (v: unknown): boolean =>
      v === null || typeof v !== 'object' || (Object.isFrozen(v) && Object.values(v).every(frozen));
    expect(frozen(cfg)).toBe(true);
    expect(() => {
      (cfg as { concurrency: number }).concurrency = 9;
    }).toThrow(TypeError);
    expect(() => (cfg.watch[0]?.include as string[]).push('x')).toThrow(TypeError);
  });

  it('ConfigError carries exit code 78 and where the problem is', () => {
    const err = configError(() => load(setup({ watch: [{ dir: 'inbox', fileType: '' }] })));
    expect(EX_CONFIG).toBe(78);
    expect(err.exitCode).toBe(78);
    expect(err.name).toBe('ConfigError');
    expect(err.source).toBe('ckpt.config.json');
    expect(err.key).toBe('watch[0].fileType');
  });
});

describe('secrets', () => {
  it('redactConfig hides URL passwords and leaves the config untouched', () => {
    const dir = setup({ database: 'postgres://ckpt:s3cret@db:5432/ingest' });
    const cfg = load(dir);
    const safe = redactConfig(cfg);
    expect(safe.database).toEqual({ kind: 'postgres', url: 'postgres://ckpt:***@db:5432/ingest', schema: 'public', urlEnv: null });
    expect(JSON.stringify(safe)).not.toContain('s3cret');
    expect(cfg.database).toMatchObject({ url: 'postgres://ckpt:s3cret@db:5432/ingest' });
    expect(Object.isFrozen(safe)).toBe(false);
    expect(safe.watch).toEqual(cfg.watch);
  });

  it.each([
    ['postgres://u:pw@h/db', 'postgres://u:***@h/db'],
    ['postgresql://u:p@ss:w/rd@h:5432/db', 'postgresql://u:***@h:5432/db'],
    ['postgres://h/db?user=u&password=pw&sslmode=require', 'postgres://h/db?user=u&password=***&sslmode=require'],
    ['postgres://u@h:5432/db', 'postgres://u@h:5432/db'],
    ['postgres://h:5432/db', 'postgres://h:5432/db'],
    ['var/ckpt.db', 'var/ckpt.db'],
    ['user:pw@host', 'user:pw@host'],
  ])('redactSecrets(%j)', (input, output) => {
    expect(redactSecrets(input)).toBe(output);
  });

  it('an error message never shows a password', () => {
    const err = configError(() => load(setup({ database: { url: 'postgres://u:hunter2@[bad/db' } })));
    expect(err.message).toContain('***');
    expect(err.message).not.toContain('hunter2');
  });
});
