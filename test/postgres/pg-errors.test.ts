/**
 * What each PostgreSQL / node-postgres error means for ckpt (no server needed: the real
 * server's errors are checked in store.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { classifyPgError, pgErrorCode, toPgStoreError } from '../../src/store/postgres/pg-errors.js';
import { checkUrl, describeTarget } from '../../src/store/postgres/pool.js';
import { StoreUnavailableError } from '../../src/store/sqlite-errors.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('classifyPgError', () => {
  it.each([
    ['40P01', 'retry'],
    ['40001', 'retry'],
    ['57P01', 'unavailable'],
    ['57P02', 'unavailable'],
    ['57P03', 'unavailable'],
    ['08006', 'unavailable'],
    ['08001', 'unavailable'],
    ['53300', 'unavailable'],
    ['57014', 'unavailable'],
    ['55P03', 'unavailable'],
    ['25006', 'unavailable'],
    ['ECONNREFUSED', 'unavailable'],
    ['ECONNRESET', 'unavailable'],
    ['ETIMEDOUT', 'unavailable'],
    ['EAI_AGAIN', 'unavailable'],
    ['28P01', 'broken'],
    ['28000', 'broken'],
    ['3D000', 'broken'],
    ['42501', 'broken'],
    ['53100', 'broken'],
    ['XX001', 'broken'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'broken'],
    ['23505', 'other'],
    ['42601', 'other'],
    ['42P01', 'other'],
  ] as const)('%s is %s', (code, cls) => {
    expect(classifyPgError(withCode(code))).toBe(cls);
  });

  it.each([
    ['Connection terminated unexpectedly', 'unavailable'],
    ['Connection terminated due to connection timeout', 'unavailable'],
    ['timeout exceeded when trying to connect', 'unavailable'],
    ['Query read timeout', 'unavailable'],
    ['Client has encountered a connection error and is not queryable', 'unavailable'],
    ['SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string', 'broken'],
    ['The server does not support SSL connections', 'broken'],
    ['something else', 'other'],
  ] as const)('node-postgres message "%s" is %s', (message, cls) => {
    expect(classifyPgError(new Error(message))).toBe(cls);
  });

  it('looks inside an AggregateError (a dual-stack connect that failed on both addresses)', () => {
    const agg = new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')], '');
    expect(pgErrorCode(agg)).toBe('ECONNREFUSED');
    expect(classifyPgError(agg)).toBe('unavailable');
  });

  it('wraps unavailable as locked and broken as broken; other errors pass through unchanged', () => {
    const down = toPgStoreError(withCode('57P01', 'terminating connection due to administrator command'), 'claim');
    expect(down).toBeInstanceOf(StoreUnavailableError);
    expect(down).toMatchObject({ kind: 'locked', code: '57P01' });
    expect((down as Error).message).toMatch(/^claim: PostgreSQL 57P01: terminating connection/);
    expect(toPgStoreError(withCode('28P01'), 'x')).toMatchObject({ kind: 'broken', code: '28P01' });
    const bug = withCode('42601', 'syntax error');
    expect(toPgStoreError(bug, 'x')).toBe(bug);
  });
});

describe('connection strings stay secret', () => {
  it('describeTarget shows host, port and database, never the user, password or parameters', () => {
    const d = describeTarget('postgres://ckpt:s3cr3t@db.example:6543/ledger?sslpassword=p2&application_name=x');
    expect(d).toBe('postgres db.example:6543/ledger');
    expect(describeTarget('not a url s3cr3t')).not.toMatch(/s3cr3t/);
  });

  it('checkUrl refuses a bad URL without echoing it', () => {
    let caught: unknown;
    try {
      checkUrl('postgres://user:s3cr3t@[bad');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(Error);
    expect(JSON.stringify(caught) + String(caught) + ((caught as Error).stack ?? '')).not.toMatch(/s3cr3t/);
    expect(() => checkUrl('mysql://a@b/c')).toThrow(/postgres:\/\//);
    expect(() => checkUrl('postgresql://a@b/c')).not.toThrow();
  });
});
