/**
 * The FallbackStore on PostgreSQL keeps the store contract in normal mode (every call through
 * the PostgreSQL store, plus the fallback's bookkeeping of open claims and the marker screen).
 */
import { afterAll, describe } from 'vitest';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { PostgresPrimary } from '../../src/store/postgres/fallback-primary.js';
import { freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { runStoreContract } from '../contract/store-contract.js';

const cluster = await pgClusterForTests('fallback store contract: postgres');

afterAll(async () => {
  await cluster?.destroy();
  cleanupTmpDirs();
});

describe.skipIf(cluster === null)('fallback on postgres', () => {
  runStoreContract('fallback on postgres (normal mode)', async (opts) =>
    FallbackStore.open(new PostgresPrimary({ url: cluster!.url(), schema: freshSchema('fbcontract'), maxConnections: 2, fallbackDir: tmpDir(), ...opts }), {
      ...opts,
      fallback: { snapshotMs: 0 },
    }),
  );
});
