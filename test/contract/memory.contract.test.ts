import { MemoryStore } from '../../src/store/memory-store.js';
import { runStoreContract } from './store-contract.js';

runStoreContract('memory', async (opts) => new MemoryStore(opts));
