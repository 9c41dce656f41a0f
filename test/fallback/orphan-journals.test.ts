/**
 * Which journals are a dead process's to replay, and when: real processes (a `sleep` stands
 * in for a live ckpt process; its pid and start time name the journal), real files.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FallbackStore } from '../../src/store/fallback/fallback-store.js';
import { type JournalEntry, orphanJournals } from '../../src/store/fallback/journal.js';
import { livenessOnce, processStartTicks, selfIdentity } from '../../src/store/fallback/process-identity.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { fallbackDirOf, journalsIn } from './helpers.js';

const sleepers: ChildProcess[] = [];
afterEach(() => {
  for (const c of sleepers.splice(0)) c.kill('SIGKILL');
  cleanupTmpDirs();
});

/** A live process standing in for a ckpt process; resolves once /proc shows it. */
async function liveProcess(): Promise<{ child: ChildProcess; pid: number; ticks: string; gone: Promise<void> }> {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  sleepers.push(child);
  const gone = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const pid = child.pid!;
  await waitFor(() => processStartTicks(pid) !== null, { message: 'sleep started' });
  return { child, pid, ticks: processStartTicks(pid)!, gone };
}

function claimEntry(fileUrl: string): JournalEntry {
  const at = Date.now();
  return {
    t: 'claim', leaseExpiresAt: at + 60_000, at, workerId: 'other', fileUrl, fileType: 'csv', fileTimestamp: new Date(at).toISOString(),
    fingerprint: 'fp', fileSize: 1, version: 1, attempt: 1, retryCount: 0, token: 'tok-other', startedAt: new Date(at).toISOString(),
  };
}

describe("a journal is a dead process's to replay only when its owner is gone", () => {
  it('a journal just created by a live process (no header line yet) is left alone, and replayed once its owner is gone', async () => {
    const dir = tmpDir();
    const db = path.join(dir, 'ckpt.db');
    await new SqliteStore(db).close();
    const owner = await liveProcess();
    const fb = fallbackDirOf(db);
    fs.mkdirSync(fb, { recursive: true });
    // What a reader sees between the owner's open(2) and its header's write: an empty file.
    const journal = path.join(fb, `journal-other-${owner.pid}-${owner.ticks}.ndjson`);
    fs.writeFileSync(journal, '');

    // Opening a store replays what dead processes left. Taken for a dead owner's, the live
    // owner's journal was removed, and every outcome it then appended went to a deleted file.
    const first = new FallbackStore(db, { fallback: { workerId: 'w1', snapshotMs: 0 } });
    await first.close();
    expect(journalsIn(db)).toEqual([journal]);

    const header = { t: 'open', at: Date.now(), workerId: 'other', owner: { pid: owner.pid, host: selfIdentity().host, startTicks: owner.ticks } };
    fs.writeFileSync(journal, `${JSON.stringify(header)}\n${JSON.stringify(claimEntry('file:///in/a.csv'))}\n`);
    owner.child.kill('SIGKILL');
    await owner.gone;
    const second = new FallbackStore(db, { fallback: { workerId: 'w2', snapshotMs: 0 } });
    await second.close();
    expect(journalsIn(db)).toEqual([]);
  });

  it('one verdict per owner for a whole pass: an owner that dies during the pass keeps its journal and markers for the next pass', async () => {
    const dir = tmpDir();
    const owner = await liveProcess();
    const journal = path.join(dir, `journal-other-${owner.pid}-${owner.ticks}.ndjson`);
    const id = { pid: owner.pid, host: selfIdentity().host, startTicks: owner.ticks };
    fs.writeFileSync(journal, `${JSON.stringify({ t: 'open', at: Date.now(), workerId: 'other', owner: id })}\n`);

    const alive = livenessOnce();
    expect(orphanJournals(dir, '', id.host, alive)).toEqual([]);
    // It appends (a claim) and is SIGKILLed before the pass removes markers.
    fs.appendFileSync(journal, `${JSON.stringify(claimEntry('file:///in/b.csv'))}\n`);
    owner.child.kill('SIGKILL');
    await owner.gone;
    // Asked again in the same pass: still alive, so its marker is not removed unread.
    expect(alive(id)).toBe(true);
    expect(orphanJournals(dir, '', id.host, alive)).toEqual([]);
    // The next pass sees it gone and reads the journal whole, the claim included.
    const next = orphanJournals(dir, '', id.host, livenessOnce());
    expect(next.map((j) => j.entries.map((e) => e.t))).toEqual([['claim']]);
  });
});
