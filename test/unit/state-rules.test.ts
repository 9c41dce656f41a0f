/**
 * The pure state rules (src/store/rules): what a failure plans, what discovery decides, and the
 * after-action label that one module writes and reads. The stores' execution of them is the
 * contract suite's job (test/contract/transitions-contract.ts).
 */
import { describe, expect, it } from 'vitest';
import { redoneLabel, splitAfterActionLabel, takesFileAway } from '../../src/store/rules/after-action-label.js';
import { discoverStep, planFailure, statusAfterAttempt } from '../../src/store/rules/transitions.js';

const RETRY = { maxRetries: 2, baseDelayMs: 1_000, maxDelayMs: 300_000 };

describe('planFailure', () => {
  it('retries with backoff until the budget is spent, then dead; a permanent failure is dead at once', () => {
    expect(planFailure(RETRY, 0, false, 10_000, () => 0.5)).toEqual({ status: 'failed', retryCount: 1, dueAt: 10_500 });
    expect(planFailure(RETRY, 1, false, 10_000, () => 0.5)).toEqual({ status: 'failed', retryCount: 2, dueAt: 11_000 });
    expect(planFailure(RETRY, 2, false, 10_000, () => 0.5)).toEqual({ status: 'dead', retryCount: 3, dueAt: null });
    expect(planFailure(RETRY, 0, true, 10_000, () => 0.5)).toEqual({ status: 'dead', retryCount: 1, dueAt: null });
  });

  it('draws jitter only for a retry (the contract pins the jitter source, so its calls are counted)', () => {
    let calls = 0;
    planFailure(RETRY, 0, true, 0, () => (calls++, 0.5));
    planFailure(RETRY, 2, false, 0, () => (calls++, 0.5));
    expect(calls).toBe(0);
    planFailure(RETRY, 0, false, 0, () => (calls++, 0.5));
    expect(calls).toBe(1);
  });
});

describe('discoverStep', () => {
  it('inserts a new path, and past a tombstone only new content (any content is kept out under ignore)', () => {
    expect(discoverStep(null, 'a', 'reprocess')).toEqual({ step: 'insert', version: 1, liftsTombstone: false });
    const tombstone = { fingerprint: 'a', version: 3 };
    expect(discoverStep({ tombstone }, 'a', 'reprocess')).toEqual({ step: 'tombstoned' });
    expect(discoverStep({ tombstone }, 'b', 'reprocess')).toEqual({ step: 'insert', version: 4, liftsTombstone: true });
    expect(discoverStep({ tombstone }, 'b', 'ignore')).toEqual({ step: 'tombstoned' });
  });

  it('new content makes a finished file the next version (policy reprocess), refreshes a waiting one, leaves a running one', () => {
    const row = (status: 'pending' | 'processing' | 'completed' | 'failed' | 'dead') => ({ row: { status, fingerprint: 'a' } });
    expect(discoverStep(row('completed'), 'b', 'reprocess').step).toBe('reversion');
    expect(discoverStep(row('dead'), 'b', 'reprocess').step).toBe('reversion');
    expect(discoverStep(row('completed'), 'b', 'ignore').step).toBe('unchanged');
    expect(discoverStep(row('pending'), 'b', 'reprocess').step).toBe('refresh');
    expect(discoverStep(row('failed'), 'b', 'ignore').step).toBe('refresh');
    expect(discoverStep(row('processing'), 'b', 'reprocess').step).toBe('unchanged');
    expect(discoverStep(row('completed'), 'a', 'reprocess').step).toBe('unchanged');
  });
});

describe('statusAfterAttempt', () => {
  it('reads the status back from a history row: a failure with an after-action was dead', () => {
    expect(statusAfterAttempt('completed', 'move:/done')).toBe('completed');
    expect(statusAfterAttempt('dead', null)).toBe('dead');
    expect(statusAfterAttempt('timeout', 'move:/dead')).toBe('dead');
    expect(statusAfterAttempt('failed', null)).toBe('failed');
  });
});

describe('the after-action label', () => {
  it('a takeover label reads back as the planned action and who redid it; a second takeover replaces the first', () => {
    const once = redoneLabel('move:/done', 'host:12', '2026-01-01T00:00:00.000Z');
    expect(once).toBe('move:/done (redone by host:12 at 2026-01-01T00:00:00.000Z)');
    expect(splitAfterActionLabel(once)).toEqual({ base: 'move:/done', redoneBy: 'host:12' });
    const twice = redoneLabel(once, 'host:13', '2026-01-01T00:01:00.000Z');
    expect(splitAfterActionLabel(twice)).toEqual({ base: 'move:/done', redoneBy: 'host:13' });
    expect(splitAfterActionLabel('delete')).toEqual({ base: 'delete', redoneBy: null });
  });

  it('only a move or a delete takes the file away, taken over or not', () => {
    expect(takesFileAway('keep')).toBe(false);
    expect(takesFileAway(null)).toBe(false);
    expect(takesFileAway('delete')).toBe(true);
    expect(takesFileAway(redoneLabel('move:/d', 'h:1', 't'))).toBe(true);
  });
});
