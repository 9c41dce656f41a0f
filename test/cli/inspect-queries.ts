/**
 * The README's "Inspect with sqlite3" queries, read from the README itself so that the text
 * and the test cannot drift apart: every ```sql block between that heading and the next
 * heading of the same or a higher level.
 *
 * README.md is the source once it has the section. Until the README is assembled, the draft
 * section in ./readme-inspect-section.md is used (delete that file after the merge: from then
 * on a README without the section fails the test instead of silently testing the draft).
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
  const readme = path.join(REPO, 'README.md');
  if (fs.existsSync(readme)) {
    const q = extractInspectQueries(fs.readFileSync(readme, 'utf8'));
    if (q !== null) return { source: readme, queries: q };
  }
  const draft = path.join(REPO, 'test', 'cli', 'readme-inspect-section.md');
  if (!fs.existsSync(draft)) throw new Error(`README.md has no "## ${INSPECT_HEADING}" section (and the draft ${draft} is gone)`);
  const q = extractInspectQueries(fs.readFileSync(draft, 'utf8'));
  if (q === null) throw new Error(`${draft} has no "${INSPECT_HEADING}" heading`);
  return { source: draft, queries: q };
}
