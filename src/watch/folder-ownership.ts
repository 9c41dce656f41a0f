/**
 * A watched folder belongs to one ledger. Two daemons on different databases watching one
 * folder would each run every file: neither ledger knows what the other did. At start the
 * daemon records its ledger in a dotfile in each watched folder (dotfiles are never data in
 * ckpt), or checks the one that is there:
 *
 *   <folder>/.ckpt-ledger   {"ledger": "<identity>", "describe": "...", ...}
 *
 *   missing          -> written (created with link(), so of two starting daemons one wins)
 *   same identity    -> fine: every ckpt process on the same database shares the folder
 *   other identity   -> refused (exit 78, one line naming both), unless
 *                       watch[].allowOtherLedgers is true, or the other ledger is provably gone:
 *                       a SQLite file on this host that no longer exists (the marker is then
 *                       replaced, with a warn line)
 *
 * The identity is read without touching the database for SQLite (host and real path of the
 * file), so a locked database (degraded start) is no obstacle. For PostgreSQL it is the
 * database, the schema and the time the schema's first migration was applied: the same from
 * every host whatever name it uses for the server, and different for a schema dropped and
 * created again (PostgresLedger, read at start, when the server must be reachable anyway).
 * A recursive watch's marker covers its sub-folders: a folder inside another ledger's
 * recursive folder is refused too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ResolvedConfig, WatchConfig } from '../config/types.js';

export const LEDGER_MARKER = '.ckpt-ledger';

export interface LedgerIdentity {
  /** Compared for equality; nothing else is. */
  id: string;
  /** For people: "SQLite database /var/lib/ckpt/ckpt.db on host edge1". */
  describe: string;
  /** SQLite only: where to look whether the ledger still exists. */
  sqlite?: { host: string; path: string };
}

interface Marker extends LedgerIdentity {
  /** Whether the folder was watched with its sub-folders. */
  recursive: boolean;
  config: string;
  since: string;
}

/** A SQLite ledger: this host and the real path of the database file (of its folder while it does not exist yet). */
export function sqliteLedger(dbPath: string, host = os.hostname()): LedgerIdentity {
  const abs = path.resolve(dbPath);
  let real: string;
  try {
    real = fs.realpathSync(abs);
  } catch {
    try {
      real = path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      real = abs;
    }
  }
  return { id: `sqlite:${host}:${real}`, describe: `SQLite database ${real} on host ${host}`, sqlite: { host, path: real } };
}

export type OwnershipResult = { ok: true } | { ok: false; line: string };

export interface OwnershipContext {
  configPath: string;
  /** Warn lines (a stale marker replaced, a folder where no marker could be written). */
  warn: (fields: Record<string, unknown>, msg: string) => void;
}

/**
 * Checks every watched folder and records this ledger where nothing is recorded. The first
 * folder held by another ledger ends the check with the line to exit 78 with.
 */
export function claimFolders(watch: readonly WatchConfig[], ledger: LedgerIdentity, ctx: OwnershipContext): OwnershipResult {
  for (const [i, w] of watch.entries()) {
    if (w.allowOtherLedgers) continue;
    let other = otherOwner(w.dir, ledger, ctx);
    // Another daemon created the marker between the look and the write: look at what it wrote.
    if (other === null && !record(w, ledger, ctx)) other = otherOwner(w.dir, ledger, ctx);
    if (other !== null) return { ok: false, line: refusal(ctx.configPath, i, w.dir, other, ledger) };
  }
  return { ok: true };
}

/** The marker of another, existing ledger in `dir` or in a folder above it that it watches recursively. */
function otherOwner(dir: string, ledger: LedgerIdentity, ctx: OwnershipContext): { marker: Marker; file: string } | null {
  for (let d = dir, first = true; ; first = false) {
    const file = path.join(d, LEDGER_MARKER);
    const m = readMarker(file);
    if (m !== null && m !== 'garbage' && (first || m.recursive) && m.id !== ledger.id) {
      if (!gone(m)) return { marker: m, file };
      if (first) {
        ctx.warn({ folder: d, marker: file, previous: m.describe }, `folder ${d} was recorded for ${m.describe}, which no longer exists: this ledger takes it over`);
        replace(file, m, ledger, ctx);
      }
    }
    const up = path.dirname(d);
    if (up === d) return null;
    d = up;
  }
}

/** A SQLite ledger of this host whose file is gone. Anything else cannot be proven gone. */
function gone(m: Marker): boolean {
  if (m.sqlite === undefined || m.sqlite.host !== os.hostname()) return false;
  return !fs.existsSync(m.sqlite.path);
}

function readMarker(file: string): Marker | 'garbage' | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const m = JSON.parse(text) as Partial<Marker>;
    return typeof m.id === 'string' && typeof m.describe === 'string' ? (m as Marker) : 'garbage';
  } catch {
    return 'garbage';
  }
}

function markerBody(w: Pick<WatchConfig, 'recursive'>, ledger: LedgerIdentity, configPath: string): string {
  const m: Marker = { ...ledger, recursive: w.recursive, config: configPath, since: new Date().toISOString() };
  return `${JSON.stringify(m, null, 2)}\n`;
}

/**
 * Creates the marker if there is none: written to a temporary name, then link()ed, which fails
 * when another daemon created it first (false: the caller reads what that one wrote). A folder
 * where nothing can be written (read-only for ckpt) is not protected: one warn line says so,
 * and the daemon goes on.
 */
function record(w: WatchConfig, ledger: LedgerIdentity, ctx: OwnershipContext): boolean {
  const file = path.join(w.dir, LEDGER_MARKER);
  const existing = readMarker(file);
  if (existing !== null && existing !== 'garbage') return true;
  const tmp = path.join(w.dir, `${LEDGER_MARKER}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, markerBody(w, ledger, ctx.configPath), { mode: 0o644 });
    if (existing === 'garbage') fs.renameSync(tmp, file);
    else fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    ctx.warn({ folder: w.dir, code }, `cannot record this ledger in ${file} (${code ?? String(err)}): a second ledger on this folder would not be detected`);
    return true;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Replaces a stale marker, only if it still names the ledger found gone. */
function replace(file: string, was: Marker, ledger: LedgerIdentity, ctx: OwnershipContext): void {
  const now = readMarker(file);
  if (now === null || now === 'garbage' || now.id !== was.id) return;
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, markerBody({ recursive: was.recursive }, ledger, ctx.configPath), { mode: 0o644 });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    ctx.warn({ marker: file, err }, `could not replace ${file}`);
  }
}

function refusal(configPath: string, i: number, dir: string, other: { marker: Marker; file: string }, ledger: LedgerIdentity): string {
  const m = other.marker;
  const where = path.dirname(other.file) === dir ? '' : ` (its marker in ${path.dirname(other.file)} covers sub-folders)`;
  return (
    `${configPath}: watch[${i}].dir: folder ${dir} belongs to another ledger, ${m.describe}${where} (recorded in ${other.file} ` +
    `since ${m.since} by ${m.config}); this one is ${ledger.describe}. Two ledgers on one folder run every file twice: ` +
    `set "allowOtherLedgers": true in watch[${i}] if that is meant, or delete ${other.file} if that ledger is gone for good`
  );
}

/** This configuration's ledger. PostgreSQL: read from the server (see ledger-identity.ts). */
export async function ledgerOf(config: Pick<ResolvedConfig, 'database' | 'lockTimeoutMs'>): Promise<LedgerIdentity> {
  const db = config.database;
  if (db.kind === 'sqlite') return sqliteLedger(db.path);
  // Loaded only for PostgreSQL, like the store itself.
  const { postgresLedger } = await import('../store/postgres/ledger-identity.js');
  return postgresLedger(db, config.lockTimeoutMs);
}
