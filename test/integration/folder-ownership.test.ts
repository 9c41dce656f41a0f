/**
 * A watched folder belongs to one ledger: a daemon on another database is refused (exit 78,
 * one line naming both), a second daemon on the same database is welcome, a ledger whose
 * database file is gone does not block, and allowOtherLedgers opts out. Real daemons, real
 * folders, the marker file as the daemons write it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LEDGER_MARKER } from '../../src/watch/folder-ownership.js';
import { type Setup, drop, killDaemons, records, rows, setup, startDaemon, started } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

/** A second config in the same folder, on the same inbox, with `database` and extra keys. */
function second(s: Setup, database: string, watchExtra: Record<string, unknown> = {}): Setup {
  const cfg = JSON.parse(fs.readFileSync(s.config, 'utf8')) as Record<string, unknown>;
  const config = path.join(s.dir, `${path.basename(database, '.db')}.config.json`);
  fs.writeFileSync(config, JSON.stringify({ ...cfg, database, watch: [{ dir: 'inbox', ...watchExtra }] }, null, 2));
  return { ...s, config, db: path.join(s.dir, database) };
}

const escape = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('folder ownership', () => {
  it('a daemon on another database is refused with one line naming both ledgers; it creates no database', async () => {
    const s = setup();
    const a = startDaemon(s);
    await started(a);
    const marker = path.join(s.inbox, LEDGER_MARKER);
    expect(JSON.parse(fs.readFileSync(marker, 'utf8'))).toMatchObject({ id: expect.stringContaining(s.db) as string });

    const o = second(s, 'other.db');
    const b = startDaemon(o);
    expect((await b.exited).code).toBe(78);
    const fatal = b.lines.filter((l) => l.level === 'fatal');
    expect(fatal).toHaveLength(1);
    const line = String(fatal[0]!.msg);
    expect(line).toMatch(new RegExp(`^${escape(o.config)}: watch\\[0\\]\\.dir: folder ${escape(s.inbox)} belongs to another ledger, SQLite database ${escape(s.db)} on host `));
    expect(line).toContain(`this one is SQLite database ${o.db} on host`);
    expect(line).toContain(`recorded in ${marker}`);
    expect(line).toMatch(/set "allowOtherLedgers": true in watch\[0\] if that is meant, or delete .* if that ledger is gone for good$/);
    expect(fs.existsSync(o.db)).toBe(false);

    // The first daemon is untouched: a file is handled once.
    const f = drop(s.inbox, 'one.csv', 'x\n');
    await waitFor(() => rows(s.db).find((r) => r.file_url === f && r.status === 'completed'), { message: 'one.csv completed' });
    expect(records(s).filter((r) => r.ev === 'start' && r.file === f)).toHaveLength(1);
  });

  it('a second daemon on the same database shares the folder: every file handled once', async () => {
    const s = setup();
    const a = startDaemon(s);
    await started(a);
    const b = startDaemon(s);
    await started(b);
    const files = Array.from({ length: 8 }, (_, i) => drop(s.inbox, `f${i}.csv`, `${i}\n`));
    await waitFor(() => rows(s.db).filter((r) => r.status === 'completed').length === files.length, { message: 'all completed' });
    const starts = records(s).filter((r) => r.ev === 'start');
    for (const f of files) expect(starts.filter((r) => r.file === f)).toHaveLength(1);
    expect(b.lines.some((l) => l.level === 'fatal')).toBe(false);
  });

  it('a ledger whose database file is gone does not block: the next ledger takes the folder over with a warn line', async () => {
    const s = setup();
    const a = startDaemon(s, ['--once']);
    expect((await a.exited).code).toBe(0);
    for (const ext of ['', '-wal', '-shm']) fs.rmSync(`${s.db}${ext}`, { force: true });

    const o = second(s, 'other.db');
    const b = startDaemon(o);
    await started(b);
    const warn = await b.waitForLog((l) => l.level === 'warn' && /which no longer exists: this ledger takes it over/.test(String(l.msg)));
    expect(warn.previous).toBe(`SQLite database ${s.db} on host ${String(warn.hostname)}`);
    const marker = JSON.parse(fs.readFileSync(path.join(s.inbox, LEDGER_MARKER), 'utf8')) as { id: string };
    expect(marker.id).toContain(o.db);
  });

  it('allowOtherLedgers: true lets a daemon on another database watch the folder on purpose', async () => {
    const s = setup();
    const a = startDaemon(s);
    await started(a);
    const o = second(s, 'other.db', { allowOtherLedgers: true });
    const b = startDaemon(o);
    await started(b);
    expect(b.lines.some((l) => l.level === 'fatal')).toBe(false);
    // The folder stays recorded for the first ledger.
    expect(fs.readFileSync(path.join(s.inbox, LEDGER_MARKER), 'utf8')).toContain(s.db);
  });
});
