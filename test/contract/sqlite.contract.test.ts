import path from 'node:path';
import { afterAll } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { runStoreContract } from './store-contract.js';

afterAll(cleanupTmpDirs);

runStoreContract('sqlite', async (opts) => new SqliteStore(path.join(tmpDir(), 'ckpt.db'), opts));
