import { describe, expect, it } from 'vitest';
import { run } from '../helpers/spawn.js';

describe('the package main entry', () => {
  it('exports the library API under the name "ckpt" (built dist/)', async () => {
    const r = await run(process.execPath, ['test/fixtures/daemon/import-ckpt.mjs']);
    expect(r.code, r.stderr).toBe(0);
    const [keys, permanent] = r.stdout.trim().split('\n');
    expect(JSON.parse(keys!)).toEqual(
      expect.arrayContaining(['CheckpointManager', 'ClaimLostError', 'PermanentError', 'SqliteStore', 'StoreUnavailableError', 'openStore', 'idempotencyKey', 'SqliteSink', 'PostgresSink', 'DEFAULT_SINK_TABLE']),
    );
    expect(permanent).toBe('true');
  });
});
