import type pg from 'pg';
import { type Known, discoverStep } from '../rules/transitions.js';
import type { Row } from '../record.js';
import { iso } from '../time.js';
import type { ChangePolicy, DiscoverResult, DiscoveredFile, Status } from '../types.js';
import type { Statements } from './statements.js';

/*
 * Discovery on PostgreSQL, inside the transaction PostgresStore.discover opens (under the shared
 * purge lock): per round, one read tells what each path needs, then only the needed writes are
 * sent, each batched over arrays. The decision for each path is rules/transitions.ts
 * (discoverStep); this file only executes it. The writes go in path order, the same order on
 * every host, in the sequence insert, reversion, refresh (see discoverRound).
 */

/** What one round's read decided: the rows to insert, to start a new version of, to refresh. */
interface RoundPlan {
  fresh: { f: DiscoveredFile; version: number; tomb: boolean }[];
  reversion: DiscoveredFile[];
  refresh: DiscoveredFile[];
}

/**
 * Discover `files` in the open transaction `c`. The same path twice in one batch is handled in
 * order, like SQLite's loop: the second sighting goes in a later round and sees what the first
 * one did.
 */
export async function discoverBatch(c: pg.PoolClient, s: Statements, files: readonly DiscoveredFile[], nowIso: string, policy: ChangePolicy): Promise<DiscoverResult> {
  const out: DiscoverResult = { inserted: 0, reversioned: 0, unchanged: 0, tombstoned: 0 };
  for (const round of rounds(files)) await discoverRound(c, s, round, nowIso, policy, out);
  return out;
}

/**
 * One read tells what each path needs; only the writes that are needed are sent (a periodic
 * rescan of known, unchanged files costs that one read). Every write repeats its condition,
 * so a row another host changed since the read is left alone and counted as unchanged.
 */
async function discoverRound(c: pg.PoolClient, s: Statements, files: DiscoveredFile[], nowIso: string, policy: ChangePolicy, res: DiscoverResult): Promise<void> {
  const known = new Map<string, Row>();
  for (const r of (await c.query<Row>({ ...s.known, values: [files.map((f) => f.fileUrl)] })).rows) known.set(String(r.file_url), r);
  const plan = planRound(files, known, policy, res);
  if (plan.fresh.length > 0) await insertFresh(c, s, plan, nowIso, policy, res);
  // In path order, like the insert: overlapping batches of two hosts lock rows in one order
  // (a deadlock is still retried by tx(), but it costs both a round of work).
  const { reversion, refresh } = plan;
  reversion.sort((a, b) => cmp(a.fileUrl, b.fileUrl));
  refresh.sort((a, b) => cmp(a.fileUrl, b.fileUrl));
  let reversioned = 0;
  if (reversion.length > 0) {
    const rv = await c.query({
      ...s.reversion,
      values: [nowIso, reversion.map((f) => f.fileUrl), reversion.map((f) => f.fileType), reversion.map((f) => iso(f.mtimeMs)), reversion.map((f) => f.fingerprint), reversion.map((f) => f.size)],
    });
    reversioned = rv.rowCount ?? 0;
  }
  if (refresh.length > 0) {
    await c.query({
      ...s.refreshFingerprint,
      values: [nowIso, refresh.map((f) => f.fileUrl), refresh.map((f) => iso(f.mtimeMs)), refresh.map((f) => f.fingerprint), refresh.map((f) => f.size)],
    });
  }
  res.reversioned += reversioned;
  // Everything not inserted, tombstoned or reversioned (a lost insert race lands in both lists).
  const handled = new Set([...reversion, ...refresh].map((f) => f.fileUrl));
  res.unchanged += handled.size - reversioned;
}

/** Sort each path of the round by what the rules say it needs; tombstoned and unchanged are counted here. */
function planRound(files: DiscoveredFile[], known: Map<string, Row>, policy: ChangePolicy, res: DiscoverResult): RoundPlan {
  const plan: RoundPlan = { fresh: [], reversion: [], refresh: [] };
  for (const f of files) {
    const next = discoverStep(knownOf(known.get(f.fileUrl)), f.fingerprint, policy);
    if (next.step === 'tombstoned') res.tombstoned++;
    else if (next.step === 'insert') plan.fresh.push({ f, version: next.version, tomb: next.liftsTombstone });
    else if (next.step === 'reversion') plan.reversion.push(f);
    else if (next.step === 'refresh') plan.refresh.push(f);
    else res.unchanged++;
  }
  return plan;
}

/**
 * Insert the new paths, delete the tombstones of those that came back, and hand the paths that
 * another host inserted since the read to the reversion/refresh lists of `plan`.
 */
async function insertFresh(c: pg.PoolClient, s: Statements, plan: RoundPlan, nowIso: string, policy: ChangePolicy, res: DiscoverResult): Promise<void> {
  const { fresh } = plan;
  // Sorted: two hosts inserting overlapping batches take the key locks in the same order.
  fresh.sort((a, b) => cmp(a.f.fileUrl, b.f.fileUrl));
  const ins = await c.query<{ file_url: string }>({
    ...s.insert,
    values: [
      nowIso,
      fresh.map((x) => x.f.fileUrl),
      fresh.map((x) => x.f.fileType),
      fresh.map((x) => iso(x.f.mtimeMs)),
      fresh.map((x) => x.f.fingerprint),
      fresh.map((x) => x.f.size),
      fresh.map((x) => x.version),
    ],
  });
  const inserted = new Set(ins.rows.map((r) => r.file_url));
  res.inserted += inserted.size;
  const revived = fresh.filter((x) => x.tomb && inserted.has(x.f.fileUrl)).map((x) => x.f.fileUrl);
  if (revived.length > 0) await c.query({ ...s.deleteTombstones, values: [revived] });
  // Inserted by another host since the read: now a known row like any other.
  for (const x of fresh) {
    if (inserted.has(x.f.fileUrl)) continue;
    if (policy === 'reprocess') plan.reversion.push(x.f);
    plan.refresh.push(x.f);
  }
}

/** Split a batch so that no round holds the same path twice, keeping each path's sightings in order. */
function rounds(files: readonly DiscoveredFile[]): DiscoveredFile[][] {
  const out: DiscoveredFile[][] = [];
  const seen = new Map<string, number>();
  for (const f of files) {
    const k = seen.get(f.fileUrl) ?? 0;
    seen.set(f.fileUrl, k + 1);
    (out[k] ??= []).push(f);
  }
  return out;
}

/** Code-unit order of two strings: the order in which every host takes row locks (and the claim's tie-break). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A row of the `known` statement as the rules read it: the row, else the tombstone, else nothing. */
function knownOf(k: Row | undefined): Known {
  if (k?.status != null) return { row: { status: k.status as Status, fingerprint: String(k.fingerprint) } };
  if (k?.tomb_fingerprint != null) return { tombstone: { fingerprint: String(k.tomb_fingerprint), version: Number(k.tomb_version) } };
  return null;
}
