/**
 * The store contract against a real PostgreSQL server (a throwaway cluster for this file).
 * Every test gets a schema of its own: isolated without a new database or server per test.
 */
import { afterAll, describe } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { freshSchema, pgClusterForTests } from '../helpers/postgres.js';
import { runStoreContract } from './store-contract.js';

const cluster = await pgClusterForTests('store contract: postgres');

afterAll(async () => {
  await cluster?.destroy();
});

describe.skipIf(cluster === null)('postgres', () => {
  runStoreContract('postgres', async (opts) =>
    PostgresStore.connect({ url: cluster!.url(), schema: freshSchema('contract'), maxConnections: 2, ...opts }),
  );
});
