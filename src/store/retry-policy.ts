import type { RetryPolicy } from './types.js';

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ maxRetries: 3, baseDelayMs: 1_000, maxDelayMs: 300_000 });

/**
 * Delay before the next attempt after the `failures`-th counted failure: exponential backoff
 * with full jitter (uniform in [0, min(max, base * 2^(failures-1))]), so that files which
 * failed together (a sink was down) do not all come back in the same instant.
 */
export function backoffDelayMs(policy: RetryPolicy, failures: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, Math.min(failures - 1, 40)));
  return Math.floor(random() * exp);
}

/** True when this many counted failures have spent the budget (maxRetries retries after the first run). */
export function budgetSpent(policy: RetryPolicy, failures: number): boolean {
  return failures > policy.maxRetries;
}
