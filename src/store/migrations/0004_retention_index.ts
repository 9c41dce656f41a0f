/**
 * Migration 4: finished rows by age, and tombstones by age, for the scheduled purge
 * (src/daemon/retention.ts).
 *
 * Without them each purge batch picks its rows by scanning the table inside its write
 * transaction: the batch that finds fewer rows than its limit reads the whole table, which on a
 * month of history at 10 files/s (26M rows) holds the write lock for far longer than a writer's
 * lockTimeoutMs. With them a batch reads only the rows it deletes. fc_finished is partial
 * (completed and dead rows only) and its key grows with time, so a completion appends to its
 * end; the purge query must repeat the condition literally.
 */
export const sql = /* sql */ `
CREATE INDEX fc_finished ON file_checkpoints (updated_at) WHERE status IN ('completed', 'dead');
CREATE INDEX ft_purged ON file_tombstones (purged_at);
`;
