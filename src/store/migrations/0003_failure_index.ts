/**
 * Migration 3: the failed attempts by end time, for `ckpt top`'s "last failures".
 *
 * Without it, "the 50 most recent failures" walks fa_ended backwards through every completed
 * attempt until it has found 50 failures: on a healthy box that is the whole history (measured:
 * 183 ms a refresh at 200,000 attempts, once a second). Partial, so it holds failures only and
 * costs nothing on a completion. The query must repeat the condition literally.
 */
export const sql = /* sql */ `
CREATE INDEX fa_failures ON file_attempts (ended_at) WHERE outcome NOT IN ('completed', 'released');
`;
