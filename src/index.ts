/** ckpt's library API. The daemon is `ckpt run`; this is for programs that embed ckpt. */
export { CheckpointManager, ClaimLostError, type CheckpointManagerOptions, type ClaimFileOptions, type ProcessingStats } from './checkpoint-manager.js';
export { PermanentError, isPermanentError } from './run/errors.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite-store.js';
export { openStore } from './store/open-store.js';
export { StoreUnavailableError, classifySqliteError } from './store/sqlite-errors.js';
export { idempotencyKey } from './store/idempotency.js';
export { STATUSES } from './store/types.js';
export type {
  AttemptRecord,
  CheckpointStore,
  Claim,
  DiscoveredFile,
  FileRecord,
  HandlerStats,
  RetryPolicy,
  Status,
} from './store/types.js';
