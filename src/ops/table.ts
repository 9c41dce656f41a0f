/**
 * Aligned plain-text tables for the CLI's human output: a header row in capitals, columns
 * separated by two spaces, numbers right-aligned, no borders (so `grep`/`awk` still work), and
 * the last column never padded (it is usually a path of any length).
 */
import { printable } from './format.js';

export interface Column {
  header: string;
  align?: 'left' | 'right';
}

/** Width in terminal columns, counting code points (wide CJK glyphs count as one: close enough). */
function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function pad(s: string, w: number, align: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return align === 'right' ? fill + s : s + fill;
}

/** Lines of the table (no trailing newline). Cells are made printable (see format.printable). */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const cells = rows.map((r) => columns.map((_, i) => printable(r[i] ?? '')));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...cells.map((r) => width(r[i] ?? ''))));
  const line = (r: readonly string[]) =>
    r
      .map((cell, i) => (i === r.length - 1 && columns[i]?.align !== 'right' ? cell : pad(cell, widths[i] ?? 0, columns[i]?.align ?? 'left')))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

/**
 * `key   value` lines with the keys aligned, for one record (`ckpt show`, the summary part of
 * `ckpt status`). Multi-line values continue indented under the value column.
 */
export function formatKeyValues(pairs: readonly (readonly [string, string])[]): string {
  const w = Math.max(0, ...pairs.map(([k]) => width(k)));
  const indent = ' '.repeat(w + 2);
  return pairs
    .map(([k, v]) => {
      const [first = '', ...rest] = v.split('\n').map(printable);
      return [`${pad(k, w, 'left')}  ${first}`.trimEnd(), ...rest.map((l) => `${indent}${l}`.trimEnd())].join('\n');
    })
    .join('\n');
}
