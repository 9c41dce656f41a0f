/**
 * `ckpt list`: files in the ledger, filtered by status, type and age, in path order.
 */
import type { ResolvedConfig } from '../../config/types.js';
import { errorSummary, formatAgo, formatCount } from '../../ops/format.js';
import { formatTable } from '../../ops/table.js';
import type { CheckpointStore, FileRecord, ListQuery, Status } from '../../store/types.js';
import { withStore } from '../context.js';
import { print, printErr, printJson } from '../output.js';
import { fileJson, type FileJson } from '../records.js';

export interface ListOptions {
  status?: Status;
  type?: string;
  /** Only rows changed within this many ms. */
  since?: number;
  /** 0: all rows. */
  limit: number;
  json?: boolean;
}

export interface ListJson {
  files: FileJson[];
  /** True when more rows matched than `--limit` let through. */
  truncated: boolean;
}

/** Rows read per store call when listing everything (`--limit 0`). */
const PAGE = 1_000;

export async function listFiles(store: CheckpointStore, opts: ListOptions, now: number): Promise<{ rows: FileRecord[]; truncated: boolean }> {
  const base: ListQuery = {};
  if (opts.status !== undefined) base.status = opts.status;
  if (opts.type !== undefined) base.fileType = opts.type;
  if (opts.since !== undefined) base.since = now - opts.since;
  if (opts.limit > 0) {
    // One more than asked, to know whether the output is cut short.
    const rows = await store.list({ ...base, limit: opts.limit + 1 });
    return { rows: rows.slice(0, opts.limit), truncated: rows.length > opts.limit };
  }
  const rows: FileRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const q: ListQuery = { ...base, limit: PAGE };
    if (after !== undefined) q.after = after;
    const page = await store.list(q);
    rows.push(...page);
    if (page.length < PAGE) return { rows, truncated: false };
    after = page[page.length - 1]?.fileUrl;
  }
}

function records(r: FileRecord): string {
  if (r.status !== 'completed') return '-';
  return r.recordsFiltered > 0 ? `${formatCount(r.recordsPersisted)}/${formatCount(r.recordsTotal)}` : formatCount(r.recordsPersisted);
}

export function renderList(rows: readonly FileRecord[], now: number): string {
  if (rows.length === 0) return 'no files match';
  const withErrors = rows.some((r) => r.errorMessage !== null);
  const columns = [
    { header: 'STATUS' },
    { header: 'TYPE' },
    { header: 'TRIES', align: 'right' as const },
    { header: 'RECORDS', align: 'right' as const },
    { header: 'UPDATED' },
    ...(withErrors ? [{ header: 'ERROR' }] : []),
    { header: 'FILE' },
  ];
  return formatTable(
    columns,
    rows.map((r) => [
      r.status,
      r.fileType,
      String(r.attempts),
      records(r),
      formatAgo(r.updatedAt, now),
      ...(withErrors ? [errorSummary(r.errorMessage, 60)] : []),
      r.fileUrl,
    ]),
  );
}

export async function listCommand(config: ResolvedConfig, opts: ListOptions): Promise<number> {
  const now = Date.now();
  const { rows, truncated } = await withStore(config, (store) => listFiles(store, opts, now));
  if (opts.json) {
    const doc: ListJson = { files: rows.map(fileJson), truncated };
    printJson(doc);
    return 0;
  }
  print(renderList(rows, now));
  if (truncated) printErr(`(first ${formatCount(opts.limit)} shown; --limit N shows more, --limit 0 shows all)`);
  return 0;
}
