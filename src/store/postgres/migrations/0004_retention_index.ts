/**
 * PostgreSQL migration 4: finished rows and tombstones by age, as in SQLite
 * (../../migrations/0004_retention_index.ts): a scheduled purge batch reads the rows it deletes,
 * not the whole table.
 */
export const sql = (s: string): string => /* sql */ `
CREATE INDEX fc_finished ON ${s}.file_checkpoints (updated_at) WHERE status IN ('completed', 'dead');
CREATE INDEX ft_purged ON ${s}.file_tombstones (purged_at);
`;
