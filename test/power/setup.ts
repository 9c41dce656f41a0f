/** A folder for the power-loss tests: inbox/ with files, done/, a module handler, a config. */
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir } from '../helpers/tmp.js';

export interface PowerSetup {
  dir: string;
  inbox: string;
  done: string;
  db: string;
  config: string;
  files: string[];
  /** What each file held. */
  contents: Map<string, string>;
}

/** `n` files in the inbox named `<prefix>-a.csv`, ...; `onSuccess` and `extra` go into the config. */
export function powerSetup(onSuccess: unknown, extra: Record<string, unknown> = {}, n = 8, prefix = 'file'): PowerSetup {
  const dir = fs.realpathSync(tmpDir('ckpt-power-'));
  const inbox = path.join(dir, 'inbox');
  const done = path.join(dir, 'done');
  fs.mkdirSync(inbox);
  fs.mkdirSync(done);
  // Files named bad-* fail for good (dead at once); the others succeed.
  fs.writeFileSync(
    path.join(dir, 'handler.mjs'),
    [
      'import path from "node:path";',
      'export default async (file) => {',
      '  if (path.basename(file).startsWith("bad-")) throw Object.assign(new Error("bad data"), { name: "PermanentError" });',
      '  return { total: 1, filtered: 0, persisted: 1 };',
      '};',
      '',
    ].join('\n'),
  );
  const config = path.join(dir, 'ckpt.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      database: 'ckpt.db',
      watch: [{ dir: 'inbox' }],
      handler: { module: './handler.mjs' },
      stableMs: 0,
      concurrency: 4,
      onSuccess,
      log: { level: 'info', format: 'json' },
      ...extra,
    }),
  );
  const files: string[] = [];
  const contents = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const f = path.join(inbox, `${prefix}-${String.fromCharCode(97 + i)}.csv`);
    fs.writeFileSync(f, `row,${i}\n`);
    files.push(f);
    contents.set(f, `row,${i}\n`);
  }
  return { dir, inbox, done, db: path.join(dir, 'ckpt.db'), config, files, contents };
}
