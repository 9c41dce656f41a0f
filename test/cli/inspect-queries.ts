/**
 * The "Inspect with sqlite3" queries, read from docs/sqlite3.md itself so that the text and the
 * test cannot drift apart: every ```sql block between that heading and the next heading of the
 * same or a higher level.
 */
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from '../helpers/spawn.js';

export const INSPECT_HEADING = 'Inspect with sqlite3';

export interface InspectQuery {
  /** The text just before the block (its caption), for test names. */
  title: string;
  sql: string;
}

/** The ```sql blocks of the section, or null when the markdown has no such heading. */
export function extractInspectQueries(markdown: string): InspectQuery[] | null {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{1,6}\s+/.test(l) && l.replace(/^#+\s+/, '').trim() === INSPECT_HEADING);
  if (start < 0) return null;
  const level = /^#+/.exec(lines[start]!)![0].length;
  const queries: InspectQuery[] = [];
  let caption = '';
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]!;
    const h = /^(#{1,6})\s/.exec(line);
    if (h && h[1]!.length <= level) break;
    const fence = /^```(\w*)\s*$/.exec(line);
    if (fence) {
      const body: string[] = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
      if (fence[1] === 'sql') queries.push({ title: caption, sql: body.join('\n').trim() });
      caption = '';
    } else if (line.trim() !== '') {
      caption = line.replace(/^#+\s+/, '').trim();
    }
  }
  return queries;
}

export function loadInspectQueries(): { source: string; queries: InspectQuery[] } {
  const source = path.join(REPO, 'docs', 'sqlite3.md');
  const q = extractInspectQueries(fs.readFileSync(source, 'utf8'));
  if (q === null) throw new Error(`${source} has no "${INSPECT_HEADING}" heading`);
  return { source, queries: q };
}
