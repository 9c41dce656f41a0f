import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { groupIdOf } from '../../src/store/open-database.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(cleanupTmpDirs);

describe('groupIdOf', () => {
  it('reads names from the group file, passes ids through, and names an unknown group', () => {
    const f = path.join(tmpDir(), 'group');
    fs.writeFileSync(f, 'root:x:0:\nckpt-readers:x:1234:alice,bob\n');
    expect(groupIdOf('ckpt-readers', f)).toBe(1234);
    expect(groupIdOf(77, f)).toBe(77);
    expect(groupIdOf('55', f)).toBe(55);
    expect(() => groupIdOf('nope', f)).toThrow(/group nope: no such group/);
  });
});
