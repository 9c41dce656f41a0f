/**
 * claimFolders() on real folders: the record a recursive watch leaves covers sub-folders, a
 * non-recursive one does not, unreadable records are replaced, and a record of another host's
 * SQLite ledger is never taken for gone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { WatchConfig } from '../../src/config/types.js';
import { LEDGER_MARKER, claimFolders, sqliteLedger } from '../../src/watch/folder-ownership.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';

afterEach(() => cleanupTmpDirs());

const watch = (dir: string, recursive = true): WatchConfig => ({
  dir,
  include: [],
  exclude: [],
  fileType: 'x',
  poll: false,
  readyMarker: null,
  recursive,
  readiness: 'auto',
  allowOtherLedgers: false,
});

function ctx(): { configPath: string; warn: (f: Record<string, unknown>, m: string) => void; warned: string[] } {
  const warned: string[] = [];
  return { configPath: '/etc/ckpt/a.json', warn: (_f, m) => warned.push(m), warned };
}

describe('claimFolders', () => {
  it('a recursive watch covers its sub-folders for another ledger; a non-recursive one does not', () => {
    const d = tmpDir('ckpt-own-');
    const sub = path.join(d, 'in', 'sub');
    fs.mkdirSync(sub, { recursive: true });
    const a = sqliteLedger(path.join(d, 'a.db'));
    const b = sqliteLedger(path.join(d, 'b.db'));
    fs.writeFileSync(path.join(d, 'a.db'), '');
    expect(claimFolders([watch(path.join(d, 'in'))], a, ctx())).toEqual({ ok: true });
    const refused = claimFolders([watch(sub)], b, ctx());
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.line).toContain(`belongs to another ledger, ${a.describe} (its marker in ${path.join(d, 'in')} covers sub-folders)`);
    // The same ledger may watch a sub-folder too.
    expect(claimFolders([watch(sub)], a, ctx())).toEqual({ ok: true });

    const e = tmpDir('ckpt-own-');
    fs.mkdirSync(path.join(e, 'in', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(e, 'a.db'), '');
    expect(claimFolders([watch(path.join(e, 'in'), false)], sqliteLedger(path.join(e, 'a.db')), ctx())).toEqual({ ok: true });
    expect(claimFolders([watch(path.join(e, 'in', 'sub'))], sqliteLedger(path.join(e, 'b.db')), ctx())).toEqual({ ok: true });
  });

  it('an unreadable record is replaced by this ledger', () => {
    const d = tmpDir('ckpt-own-');
    fs.writeFileSync(path.join(d, LEDGER_MARKER), 'not json');
    const a = sqliteLedger(path.join(d, 'a.db'));
    expect(claimFolders([watch(d)], a, ctx())).toEqual({ ok: true });
    expect(JSON.parse(fs.readFileSync(path.join(d, LEDGER_MARKER), 'utf8'))).toMatchObject({ id: a.id });
  });

  it("another host's SQLite ledger is never taken for gone, even when that path does not exist here", () => {
    const d = tmpDir('ckpt-own-');
    const theirs = sqliteLedger('/nonexistent/ckpt.db', 'other-host');
    fs.writeFileSync(path.join(d, LEDGER_MARKER), JSON.stringify({ ...theirs, recursive: true, config: '/x.json', since: 'then' }));
    const c = ctx();
    const r = claimFolders([watch(d)], sqliteLedger(path.join(d, 'a.db')), c);
    expect(r.ok).toBe(false);
    expect(c.warned).toEqual([]);
  });
});
