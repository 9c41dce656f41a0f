import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { PermanentError, isPermanentError } from '../../src/run/errors.js';
import { createHandler, type HandlerOutcome } from '../../src/run/handler.js';
import { errorText } from '../../src/run/module-handler.js';
import { makeContext } from '../fixtures/handlers/make-context.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const FIX = path.resolve(import.meta.dirname, '../fixtures/handlers');
const fixture = (name: string): string => path.join(FIX, name);

function failed(o: HandlerOutcome): Extract<HandlerOutcome, { ok: false }> {
  if (o.ok) throw new Error(`expected a failure, got ${JSON.stringify(o)}`);
  return o;
}

function dataFile(content = 'a\nb\nc\n'): string {
  const file = path.join(tmpDir(), 'in.csv');
  fs.writeFileSync(file, content);
  return file;
}

afterEach(() => cleanupTmpDirs());

describe('module handler: loading', () => {
  it('a missing module is a clear error at creation', async () => {
    await expect(createHandler({ module: '/nonexistent/ckpt/handler.mjs' })).rejects.toThrow('handler module not found: /nonexistent/ckpt/handler.mjs');
  });

  it('a module without a default export, or with a non-function default, is refused at creation', async () => {
    await expect(createHandler({ module: fixture('module-no-default.mjs') })).rejects.toThrow(/must have a default export that is a function.*missing/);
    await expect(createHandler({ module: fixture('module-default-object.mjs') })).rejects.toThrow(/default export is object/);
  });

  it('a module that does not parse is refused at creation with the cause', async () => {
    await expect(createHandler({ module: fixture('module-syntax-error.mjs') })).rejects.toThrow(/failed to load/);
  });

  it('accepts a file: URL and a CommonJS module with exports.default', async () => {
    const h = await createHandler({ module: pathToFileURL(fixture('module-cjs-default.cjs')).href });
    expect(await h(makeContext(dataFile()))).toMatchObject({ ok: true, stats: { total: 3, filtered: 0, persisted: 3 } });
  });

  it('rejects a negative timeout', async () => {
    await expect(createHandler({ module: fixture('module-void.mjs'), timeoutMs: -5 })).rejects.toThrow(/timeoutMs/);
  });
});

describe('module handler: running', () => {
  it('calls the default export with the absolute path and the documented ctx; returns its stats', async () => {
    const h = await createHandler({ module: fixture('module-stats.mjs') });
    const file = dataFile();
    const ctx = makeContext(file, { attempt: 2 });
    expect(await h(ctx)).toMatchObject({ ok: true, stats: { total: 3, filtered: 1, persisted: 2 } });
    const seen = JSON.parse(fs.readFileSync(`${file}.ctx.json`, 'utf8')) as Record<string, unknown>;
    expect(seen).toEqual({
      file,
      keys: ['attempt', 'fileType', 'fileUrl', 'idempotencyKey', 'logger', 'signal', 'version', 'workerId'],
      attempt: 2,
      workerId: 'w-test',
      idempotencyKey: 'idem-123',
      fileType: 'csv',
      hasLogger: true,
      signalAborted: false,
    });
    // The handler logged through ctx.logger, which carries the file's context.
    expect(ctx.logLines().find((l) => l.msg === 'counted')).toMatchObject({ path: file, lines: 3 });
  });

  it('returning nothing is success without stats', async () => {
    const h = await createHandler({ module: fixture('module-void.mjs') });
    expect(await h(makeContext(dataFile()))).toMatchObject({ ok: true, stats: null });
  });

  it('malformed stats are ignored and logged', async () => {
    const h = await createHandler({ module: fixture('module-bad-stats.mjs') });
    const ctx = makeContext(dataFile());
    expect(await h(ctx)).toMatchObject({ ok: true, stats: null });
    expect(ctx.logLines().find((l) => l.level === 'warn')?.msg).toMatch(/not stats.*total is -1.*filtered is the string/);
  });

  it('a throw is a retryable failure with the message and the top stack frame', async () => {
    const h = await createHandler({ module: fixture('module-throws.mjs') });
    const file = dataFile();
    const o = failed(await h(makeContext(file)));
    expect(o).toMatchObject({ permanent: false, kind: 'threw' });
    expect(o.error).toMatch(new RegExp(`^Error: cannot reach the sink for ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n    at .*module-throws\\.mjs`));
  });

  it('a synchronous throw of a non-Error value is a failure too', async () => {
    const h = await createHandler({ module: fixture('module-throws-sync.mjs') });
    const o = failed(await h(makeContext(dataFile())));
    expect(o).toMatchObject({ permanent: false, kind: 'threw', error: 'threw a non-Error value: plain string thrown' });
  });

  it('PermanentError is permanent: our class, a foreign copy (by name), or permanent: true', async () => {
    for (const name of ['module-permanent.ts', 'module-permanent-foreign.mjs', 'module-permanent-flag.mjs']) {
      const h = await createHandler({ module: fixture(name) });
      const o = failed(await h(makeContext(dataFile())));
      expect(o, name).toMatchObject({ permanent: true, kind: 'threw' });
    }
  });

  it('timeout: aborts ctx.signal and reports a timeout at once; the late result is ignored and logged', async () => {
    const h = await createHandler({ module: fixture('module-slow.mjs'), timeoutMs: 100 });
    const file = dataFile();
    const ctx = makeContext(file);
    const o = failed(await h(ctx));
    expect(o).toMatchObject({ permanent: false, kind: 'timeout' });
    expect(o.error).toMatch(/^timed out after 100 ms/);
    await waitFor(() => fs.existsSync(`${file}.aborted`));
    expect(fs.readFileSync(`${file}.aborted`, 'utf8')).toBe('timed out after 100 ms');
    await waitFor(() => ctx.logLines().some((l) => String(l.msg).includes('settled after it was timed out')));
  });

  it('timeout: a handler that first reads ctx.signal after the timeout finds it aborted, with the reason, and the same signal each time', async () => {
    const h = await createHandler({ module: fixture('module-late-signal.mjs'), timeoutMs: 50 });
    const file = dataFile();
    expect(failed(await h(makeContext(file))).kind).toBe('timeout');
    await waitFor(() => fs.existsSync(`${file}.late`));
    expect(JSON.parse(fs.readFileSync(`${file}.late`, 'utf8'))).toEqual({ aborted: true, reason: 'timed out after 50 ms', same: true });
  });

  it('timeout: a promise that never settles does not hold the outcome', async () => {
    const h = await createHandler({ module: fixture('module-never.mjs'), timeoutMs: 50 });
    expect(failed(await h(makeContext(dataFile()))).kind).toBe('timeout');
  });

  it('ctx.signal aborting reports aborted and aborts the signal the module sees', async () => {
    const h = await createHandler({ module: fixture('module-slow.mjs') });
    const file = dataFile();
    const ac = new AbortController();
    const running = h(makeContext(file, { signal: ac.signal }));
    ac.abort(new Error('lease lost'));
    const o = failed(await running);
    expect(o).toMatchObject({ kind: 'aborted', permanent: false });
    expect(o.error).toMatch(/^aborted \(lease lost\)/);
    await waitFor(() => fs.existsSync(`${file}.aborted`));
    expect(fs.readFileSync(`${file}.aborted`, 'utf8')).toBe('lease lost');
  });

  it('an already aborted signal: the module is not called', async () => {
    const h = await createHandler({ module: fixture('module-stats.mjs') });
    const file = dataFile();
    const ac = new AbortController();
    ac.abort();
    expect(failed(await h(makeContext(file, { signal: ac.signal }))).kind).toBe('aborted');
    expect(fs.existsSync(`${file}.ctx.json`)).toBe(false);
  });
});

describe('PermanentError detection', () => {
  it('instanceof, name, or permanent: true; nothing else', () => {
    expect(isPermanentError(new PermanentError('x'))).toBe(true);
    expect(new PermanentError('x').name).toBe('PermanentError');
    expect(isPermanentError(Object.assign(new Error('x'), { name: 'PermanentError' }))).toBe(true);
    expect(isPermanentError({ permanent: true })).toBe(true);
    expect(isPermanentError(new Error('x'))).toBe(false);
    expect(isPermanentError({ permanent: 'yes' })).toBe(false);
    expect(isPermanentError('PermanentError')).toBe(false);
    expect(isPermanentError(null)).toBe(false);
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
      },
    );
    expect(isPermanentError(hostile)).toBe(false);
  });

  it('errorText never throws', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(errorText(cyclic)).toBe('threw a value that cannot be printed');
    expect(errorText({ message: 'm', name: 'Custom' })).toBe('Custom: m');
    expect(errorText(undefined)).toBe('threw a non-Error value: undefined');
    expect(errorText(Object.create(null) as object)).toBe('threw a non-Error value: {}');
  });
});
