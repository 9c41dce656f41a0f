/**
 * README.md read by the tests that keep its examples true: the fenced blocks of one section
 * (from its heading to the next heading of the same or a higher level, sub-sections included).
 */
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from './spawn.js';

export interface Block {
  /** The fence's info string (`js`, `text`, `sh`, or '' for a bare fence). */
  lang: string;
  body: string;
  /** 1-based line of the opening fence in the markdown, for messages. */
  line: number;
}

export const README = path.join(REPO, 'README.md');

export function readme(): string {
  return fs.readFileSync(README, 'utf8');
}

/** The fenced blocks under `heading` (its text without the #s), or null without that heading. */
export function sectionBlocks(markdown: string, heading: string): Block[] | null {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^#{1,6}\s+/.test(l) && l.replace(/^#+\s+/, '').trim() === heading);
  if (start < 0) return null;
  const level = /^#+/.exec(lines[start]!)![0].length;
  return fencedBlocks(lines, start + 1, level);
}

/** Every fenced block of the markdown. */
export function allBlocks(markdown: string): Block[] {
  return fencedBlocks(markdown.split('\n'), 0, 0);
}

/** Blocks from line `from` up to the next heading of level <= `level` (0: to the end). */
function fencedBlocks(lines: string[], from: number, level: number): Block[] {
  const blocks: Block[] = [];
  for (let i = from; i < lines.length; i++) {
    const h = /^(#{1,6})\s/.exec(lines[i]!);
    if (h && h[1]!.length <= level) break;
    const fence = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const line = i + 1;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    blocks.push({ lang: fence[1]!, body: body.join('\n'), line });
  }
  return blocks;
}

/** Like sectionBlocks() on README.md, but a missing heading is an error naming it. */
export function readmeBlocks(heading: string): Block[] {
  const blocks = sectionBlocks(readme(), heading);
  if (blocks === null) throw new Error(`README.md has no "${heading}" heading`);
  return blocks;
}
