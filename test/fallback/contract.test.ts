/**
 * The FallbackStore keeps the store contract in normal mode (everything through SQLite, plus
 * its own bookkeeping of open claims and the marker screen).
 */
import path from 'node:path';
import { afterAll } from 'vitest';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { runStoreContract } from '../contract/store-contract.js';

afterAll(cleanupTmpDirs);

runStoreContract('fallback (normal mode)', async (opts) => new FallbackStore(path.join(tmpDir(), 'ckpt.db'), { ...opts, fallback: {} }));
