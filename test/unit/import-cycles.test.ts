import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('import graph of src', () => {
  it('has no import circles (scripts/import-cycles.mjs)', () => {
    const r = spawnSync(process.execPath, ['scripts/import-cycles.mjs', 'src'], { encoding: 'utf8' });
    expect(r.stdout).toBe('0 import circle(s) under src\n');
    expect(r.status).toBe(0);
  });
});
