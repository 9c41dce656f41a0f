/**
 * PostgreSQL migration 3: the failed attempts by end time, as in SQLite
 * (../../migrations/0003_failure_index.ts): `ckpt top`'s "last failures" reads them newest
 * first without walking every completed attempt.
 */
export const sql = (s: string): string => /* sql */ `
CREATE INDEX fa_failures ON ${s}.file_attempts (ended_at) WHERE outcome NOT IN ('completed', 'released');
`;
