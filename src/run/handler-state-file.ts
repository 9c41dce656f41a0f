/**
 * `<fallbackDir>/handler-<worker>-<pid>.json`: written while this process cannot start its
 * handler program, removed when it can again (and when the process stops). `ckpt status` reads
 * these files rather than a database row: a process whose handler is gone must be able to say
 * so while the database is locked too, and it needs no schema change. A file left by a process
 * that was killed is ignored (its owner is checked as for claim markers) and removed by the
 * next daemon that starts with the same folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { safeName } from '../store/fallback/journal.js';
import { type ProcessIdentity, isAlive, selfIdentity } from '../store/fallback/process-identity.js';
import { namesIn } from '../dir-names.js';

export interface HandlerStateFile {
  workerId: string;
  owner: ProcessIdentity;
  /** Epoch ms since when the program cannot be started. */
  since: number;
  program: string;
  why: string;
}

const PREFIX = 'handler-';

function fileOf(dir: string, workerId: string): string {
  return path.join(dir, `${PREFIX}${safeName(workerId)}-${process.pid}.json`);
}

/** Records that this process's handler is unavailable. Best effort: returns the error, never throws. */
export function writeHandlerState(dir: string, s: Omit<HandlerStateFile, 'owner'>, fileMode = 0o600): Error | null {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = fileOf(dir, s.workerId);
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ ...s, owner: selfIdentity() }), { mode: fileMode });
    fs.renameSync(tmp, file);
    return null;
  } catch (err) {
    return err as Error;
  }
}

export function removeHandlerState(dir: string, workerId: string): void {
  fs.rmSync(fileOf(dir, workerId), { force: true });
}

function readAll(dir: string): { file: string; state: HandlerStateFile | null }[] {
  const names = namesIn(dir).filter((n) => n.startsWith(PREFIX) && n.endsWith('.json'));
  return names.map((n) => {
    const file = path.join(dir, n);
    try {
      return { file, state: JSON.parse(fs.readFileSync(file, 'utf8')) as HandlerStateFile };
    } catch {
      return { file, state: null };
    }
  });
}

/** The unavailable handlers of processes that still run. */
export function readHandlerStates(dir: string): HandlerStateFile[] {
  return readAll(dir)
    .map((e) => e.state)
    .filter((s): s is HandlerStateFile => s !== null && s.owner !== undefined && isAlive(s.owner));
}

/** Removes the files of processes that are gone; returns how many. */
export function removeStaleHandlerStates(dir: string): number {
  let n = 0;
  for (const e of readAll(dir)) {
    if (e.state?.owner === undefined || isAlive(e.state.owner)) continue;
    fs.rmSync(e.file, { force: true });
    n++;
  }
  return n;
}
