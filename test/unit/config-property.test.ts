/**
 * Property: whatever the config file holds, loadConfig() either returns a valid, deeply frozen
 * config or throws a ConfigError; never any other exception (a TypeError from deep inside
 * would reach the operator as a stack trace instead of exit 78 and one line).
 *
 * Every generated path is relative and made of plain segments, so that even with
 * "createDirs": true nothing is created outside the run's own temp folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigOverrides, ResolvedConfig } from '../../src/config/types.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

const NAME = 'ckpt.config.json';

function isDeeplyFrozen(v: unknown): boolean {
  return v === null || typeof v !== 'object' || (Object.isFrozen(v) && Object.values(v).every(isDeeplyFrozen));
}

/** Runs loadConfig on `content` in a fresh folder; returns the config or the ConfigError. */
function attempt(
  root: string,
  content: string,
  opts: { env?: Record<string, string>; overrides?: ConfigOverrides; prepare?: (dir: string) => void } = {},
): ResolvedConfig | ConfigError {
  const dir = fs.mkdtempSync(path.join(root, 'run-'));
  fs.mkdirSync(path.join(dir, 'inbox'));
  opts.prepare?.(dir);
  fs.writeFileSync(path.join(dir, NAME), content);
  try {
    const cfg = loadConfig(NAME, { cwd: dir, env: opts.env ?? {}, overrides: opts.overrides ?? {} });
    expect(isDeeplyFrozen(cfg)).toBe(true);
    expect(path.isAbsolute(cfg.configPath)).toBe(true);
    for (const w of cfg.watch) expect(fs.statSync(w.dir).isDirectory()).toBe(true);
    if (cfg.database.kind === 'sqlite') expect(fs.statSync(path.dirname(cfg.database.path)).isDirectory()).toBe(true);
    return cfg;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    expect(err.exitCode).toBe(78);
    expect(err.message.length).toBeGreaterThan(0);
    return err;
  }
}

// --- generators -------------------------------------------------------------------------------

/** Plain names, plus the names the file system refuses: a NUL byte, more than 255 bytes. */
const segment = fc.oneof(
  { weight: 20, arbitrary: fc.stringMatching(/^[a-z0-9_ -]{1,8}$/) },
  { weight: 1, arbitrary: fc.constant('nul\u0000byte') },
  { weight: 1, arbitrary: fc.constant('x'.repeat(300)) },
);
const relPath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((segs) => segs.join('/'));
/** Any JSON value except a string, so that junk can never be an absolute path. */
const nonString = fc.jsonValue().filter((v) => typeof v !== 'string');
const junkString = fc.string({ maxLength: 20 }).filter((s) => !s.includes('/') && !s.startsWith('.'));
const pathLike = fc.oneof(fc.constant('inbox'), relPath, nonString);
const ms = fc.oneof(fc.integer({ min: -5, max: 3_000_000_000 }), fc.double(), fc.constant('1000'), fc.constant(null));

const watchEntry = fc.record(
  {
    dir: pathLike,
    include: fc.oneof(fc.array(fc.oneof(fc.constant('**/*.csv'), fc.constant('/abs/*.csv'), junkString), { maxLength: 3 }), nonString),
    exclude: fc.array(junkString, { maxLength: 2 }),
    fileType: fc.oneof(junkString, nonString),
    poll: fc.oneof(fc.boolean(), fc.constant('auto'), fc.constant('yes'), nonString),
    readyMarker: fc.oneof(fc.constant('.done'), fc.constant(null), fc.constant('a/b'), junkString),
    recursive: fc.oneof(fc.boolean(), nonString),
    bogus: fc.jsonValue(),
  },
  { requiredKeys: [] },
);

const handler = fc.oneof(
  fc.record(
    {
      command: fc.oneof(
        fc.array(fc.oneof(fc.constant('node'), fc.constant('{path}'), fc.constant('{file}'), fc.constant(''), junkString), { maxLength: 4 }),
        nonString,
      ),
      timeoutMs: ms,
      killGraceMs: ms,
    },
    { requiredKeys: [] },
  ),
  fc.record({ module: pathLike, timeoutMs: ms }, { requiredKeys: [] }),
  fc.record({ command: fc.constant(['node']), module: fc.constant('h.mjs') }),
  nonString,
);

const afterAction = fc.oneof(
  fc.constant('keep'),
  fc.constant('delete'),
  fc.record({ moveTo: pathLike }),
  fc.record({ moveTo: pathLike, extra: fc.jsonValue() }),
  junkString,
  nonString,
);

const database = fc.oneof(
  relPath.map((p) => `${p}.db`),
  fc.constant('postgres://u:pw@localhost:5432/db'),
  fc.constant('postgresql://[broken'),
  fc.constant('mysql://x/y'),
  fc.record({ url: fc.oneof(fc.constant('postgres://h/db'), junkString), schema: fc.oneof(fc.constant('ckpt'), junkString) }, { requiredKeys: [] }),
  fc.record({ urlEnv: fc.oneof(fc.constant('CKPT_PG_URL'), junkString) }, { requiredKeys: [] }),
  nonString,
);

/** Objects shaped like a config: right keys, values anywhere from right to nonsense. */
const configLike = fc.record(
  {
    database,
    watch: fc.oneof(fc.array(watchEntry, { maxLength: 3 }), nonString),
    handler,
    concurrency: fc.oneof(fc.integer({ min: -2, max: 300 }), fc.constant('four'), nonString),
    leaseMs: ms,
    stableMs: ms,
    rescanMs: ms,
    retry: fc.oneof(fc.record({ maxRetries: ms, baseDelayMs: ms, maxDelayMs: ms }, { requiredKeys: [] }), nonString),
    onSuccess: afterAction,
    onDead: afterAction,
    onChange: fc.oneof(fc.constant('reprocess'), fc.constant('ignore'), junkString),
    shutdownGraceMs: ms,
    lockTimeoutMs: ms,
    log: fc.oneof(fc.record({ level: fc.oneof(fc.constant('debug'), junkString), format: fc.oneof(fc.constant('json'), junkString) }, { requiredKeys: [] }), nonString),
    http: fc.oneof(fc.record({ port: fc.oneof(fc.integer({ min: -1, max: 70_000 }), junkString), host: junkString }, { requiredKeys: [] }), nonString),
    workerId: fc.oneof(junkString, nonString),
    fileMode: fc.oneof(fc.constant('0600'), fc.constant('0640'), fc.constant('0400'), fc.constant('999'), fc.integer(), junkString),
    group: fc.oneof(junkString, fc.integer(), nonString),
    createDirs: fc.oneof(fc.boolean(), nonString),
    typo: fc.jsonValue(),
  },
  { requiredKeys: [] },
);

/** Mostly valid configs with one or two keys replaced, so the deeper checks (folders, cross-key rules) run too. */
const nearlyValid = fc
  .tuple(
    fc.record(
      {
        database: fc.oneof({ weight: 5, arbitrary: relPath.map((p) => `${p}.db`) }, { weight: 1, arbitrary: fc.constant('inbox/x.db') }),
        watch: fc.array(fc.record({ dir: fc.oneof(fc.constant('inbox'), relPath), recursive: fc.boolean() }, { requiredKeys: ['dir'] }), { minLength: 1, maxLength: 3 }),
        handler: fc.constant({ command: ['node', 'h.mjs', '{path}'] }),
        onSuccess: fc.oneof(fc.constant('keep'), fc.record({ moveTo: fc.oneof({ weight: 4, arbitrary: relPath }, { weight: 1, arbitrary: fc.constant('inbox/done') }) })),
        onDead: fc.oneof(fc.constant('delete'), fc.record({ moveTo: relPath })),
        createDirs: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.boolean() }),
      },
      { requiredKeys: ['database', 'watch', 'handler', 'createDirs'] },
    ),
    configLike,
    fc.array(fc.constantFrom('database', 'watch', 'handler', 'concurrency', 'retry', 'onSuccess', 'log', 'http', 'fileMode', 'createDirs'), { maxLength: 1 }),
  )
  .map(([valid, junk, keys]) => {
    const out: Record<string, unknown> = { ...valid };
    for (const k of keys) if (k in junk) out[k] = (junk as Record<string, unknown>)[k];
    return out;
  });

// --- properties -------------------------------------------------------------------------------

describe('loadConfig never throws anything but ConfigError', () => {
  it('for any JSON value as the whole file', () => {
    const root = tmpDir('ckpt-prop-');
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        attempt(root, JSON.stringify(value) ?? 'null');
      }),
      { numRuns: 200 },
    );
  });

  it('for any text as the file', () => {
    const root = tmpDir('ckpt-prop-');
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.jsonValue().map((v) => (JSON.stringify(v) ?? '').slice(0, -1))), (textContent) => {
        expect(attempt(root, textContent)).toBeInstanceOf(ConfigError);
      }),
      { numRuns: 200 },
    );
  });

  it('for config-shaped objects with any values', () => {
    const root = tmpDir('ckpt-prop-');
    fc.assert(
      fc.property(configLike, (value) => {
        attempt(root, JSON.stringify(value));
      }),
      { numRuns: 300 },
    );
  });

  it('for nearly valid configs, which mostly load', () => {
    const root = tmpDir('ckpt-prop-');
    let loaded = 0;
    let runs = 0;
    fc.assert(
      fc.property(nearlyValid, (value) => {
        runs++;
        if (!(attempt(root, JSON.stringify(value)) instanceof ConfigError)) loaded++;
      }),
      { numRuns: 300 },
    );
    // The generator must reach the end of loadConfig often, or the property proves little.
    // Measured over 20 seeds: 29-39% loaded; 15% leaves a wide margin for an unlucky seed.
    expect(loaded / runs).toBeGreaterThan(0.15);
  });

  it('for any environment variables and flags', () => {
    const root = tmpDir('ckpt-prop-');
    const valid = JSON.stringify({ database: 'var/x.db', watch: [{ dir: 'inbox' }], handler: { command: ['node'] } });
    const envValue = fc.oneof(fc.string({ maxLength: 12 }).filter((s) => !s.startsWith('/')), fc.integer().map(String), fc.constant('postgres://u:p@h/db'));
    const envArb = fc.record(
      {
        CKPT_DATABASE: envValue.filter((s) => !s.includes('..')),
        CKPT_LOG_LEVEL: envValue,
        CKPT_CONCURRENCY: envValue,
        CKPT_WORKER_ID: envValue,
        CKPT_HTTP_PORT: envValue,
      },
      { requiredKeys: [] },
    );
    const overridesArb = fc.record(
      {
        database: envValue.filter((s) => !s.includes('..')),
        logLevel: envValue,
        logFormat: envValue,
        concurrency: fc.oneof(envValue, fc.double(), fc.integer()),
        workerId: envValue,
        httpPort: fc.oneof(envValue, fc.integer()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(envArb, overridesArb, (env, overrides) => {
        attempt(root, valid, { env, overrides });
      }),
      { numRuns: 300 },
    );
  });
});
