/**
 * Hostile file names through the real CLI, beyond what test/integration/daemon.test.ts covers
 * (spaces, tab, newline, leading '-', $(...), backticks, ';', quotes, backslash, globs,
 * non-Latin, 240 bytes: handled once, byte for byte, no shell). Here: names that are not UTF-8
 * at all, names at the 255-byte limit (also where a move would need a longer name), and
 * folders 40 levels deep, with the after-action that moves each file into done/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { countStatus, drop, killDaemons, rows, setup, startDaemon, started, statusOf } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { chaosCommand, chaosRecords } from '../chaos/support.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

const INVALID_UTF8 = 'file name is not valid UTF-8: skipped (rename it to a UTF-8 name to have it processed)';

describe('hostile names', () => {
  it('names that are not UTF-8 are skipped with one clear error each, never looped on; 255-byte and 40-deep names are handled once and moved', async () => {
    const s = setup({ handler: { command: chaosCommand() }, onSuccess: { moveTo: 'done' }, createDirs: true, concurrency: 4 });
    const inbox = Buffer.from(`${s.inbox}/`);
    // Invalid UTF-8: a lone 0xff, a truncated 3-byte sequence, an overlong '/' (0xc0 0xaf).
    const bad = [
      Buffer.from([0x62, 0x61, 0x64, 0xff, 0x2e, 0x63, 0x73, 0x76]),
      Buffer.from([0x74, 0x72, 0x75, 0x6e, 0xe2, 0x82, 0x2e, 0x63, 0x73, 0x76]),
      Buffer.from([0x6f, 0x76, 0x65, 0x72, 0xc0, 0xaf, 0x2e, 0x63, 0x73, 0x76]),
    ];
    for (const b of bad) fs.writeFileSync(Buffer.concat([inbox, b]), 'ok\n');
    // A folder whose name is not UTF-8, holding a file with a fine name: skipped as a whole.
    const badDir = Buffer.concat([inbox, Buffer.from([0x64, 0x69, 0x72, 0xfe])]);
    fs.mkdirSync(badDir);
    fs.writeFileSync(Buffer.concat([badDir, Buffer.from('/inner.csv')]), 'ok\n');

    // 255 bytes, the limit of ext4/xfs/tmpfs: ASCII, and two-byte characters (127 x 'é' = 254 + 'x').
    const long = `${'n'.repeat(251)}.csv`;
    const longUtf8 = `${'é'.repeat(125)}.csv`; // 250 + 4 = 254 bytes
    expect([Buffer.byteLength(long), Buffer.byteLength(longUtf8)]).toEqual([255, 254]);
    // A 255-byte name whose move would need a suffix: done/ already has that name, and
    // `<stem>.1.csv` is 257 bytes. The move must fail clearly, never overwrite, never loop.
    const clash = `${'c'.repeat(251)}.csv`;
    fs.mkdirSync(path.join(s.dir, 'done'), { recursive: true });
    fs.writeFileSync(path.join(s.dir, 'done', clash), 'already here\n');
    // 40 levels deep.
    const deepRel = Array.from({ length: 40 }, (_, i) => `level-${String(i + 1).padStart(2, '0')}`).join('/');
    fs.mkdirSync(path.join(s.inbox, deepRel), { recursive: true });

    const d = startDaemon(s);
    await started(d);
    const good = [long, longUtf8, clash, `${deepRel}/deep.csv`];
    for (const n of good) drop(path.dirname(path.join(s.inbox, n)), path.basename(n), `ok\nid ${n.length}\n`);
    await waitFor(() => countStatus(s.db, 'completed') === good.length, { timeoutMs: 30_000 });
    // Let a periodic rescan (every 2 s here) walk past all of it again.
    const scans = d.lines.filter((l) => l.msg === 'folder scan finished').length;
    await d.waitForLog((l) => l.msg === 'folder scan finished' && d.lines.filter((x) => x.msg === 'folder scan finished').length > scans + 1, 20_000);

    // Each good name: one run, completed, moved into done/ under the same relative path.
    const starts = chaosRecords(s.recordLog).filter((r) => r.ev === 'start');
    expect(starts.map((r) => path.relative(s.inbox, r.file)).sort()).toEqual([...good].sort());
    for (const n of [long, longUtf8, `${deepRel}/deep.csv`]) {
      expect(fs.existsSync(path.join(s.dir, 'done', n)), `done/${n.slice(0, 40)}...`).toBe(true);
      expect(fs.existsSync(path.join(s.inbox, n))).toBe(false);
    }
    // The clash: completed once, left in the inbox, the other file in done/ untouched.
    expect(statusOf(s.db, path.join(s.inbox, clash))).toBe('completed');
    expect(fs.existsSync(path.join(s.inbox, clash))).toBe(true);
    expect(fs.readFileSync(path.join(s.dir, 'done', clash), 'utf8')).toBe('already here\n');
    const failed = d.lines.filter((l) => l.msg === 'after-action failed; the file stays where it is' && l.path === path.join(s.inbox, clash));
    expect(failed).toHaveLength(1);
    expect(failed[0]!.error).toMatch(/too long/);

    // The bad names: no row, no run, still in place, one error line each for the daemon's life.
    expect(rows(s.db)).toHaveLength(good.length);
    const errors = d.lines.filter((l) => l.msg === INVALID_UTF8);
    expect(errors.length).toBe(bad.length + 1);
    expect(new Set(errors.map((l) => l.path)).size).toBe(bad.length + 1);
    for (const e of errors) expect(e.level).toBe('error');
    for (const b of bad) expect(fs.existsSync(Buffer.concat([inbox, b]))).toBe(true);
    // The shown name escapes the bad bytes instead of printing U+FFFD.
    expect(errors.map((l) => String(l.path)).some((p) => p.includes('\\xff'))).toBe(true);

    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
