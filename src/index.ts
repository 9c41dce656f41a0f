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
export { SqliteSink, type SqliteSinkOptions, type SqliteSinkTx, type SqliteSinkStatement, type SqliteSinkWrite } from './sink/sqlite-sink.js';
export { PostgresSink, type PostgresSinkOptions, type PostgresSinkTx, type PostgresSinkWrite } from './sink/postgres-sink.js';
export { DEFAULT_SINK_TABLE, type AppliedRecord, type SinkResult, type SinkRun } from './sink/common.js';
