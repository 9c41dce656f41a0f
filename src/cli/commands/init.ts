/**
 * `ckpt init [DIR]`: a working starting point in one command. Writes DIR/ckpt.config.json, an
 * inbox (plus done/ and dead/ for the after-actions), an example handler, and prints what to do
 * next. Never overwrites: an existing config is refused (exit 73), an existing handler is kept.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../config/load.js';
import { CliError, EXIT } from '../exit-codes.js';
import { print } from '../output.js';

export const CONFIG_NAME = 'ckpt.config.json';
const HANDLER_NAME = 'handler.mjs';

/** The starter configuration; paths are relative to the config file's folder. */
export const STARTER_CONFIG = {
  database: 'var/ckpt.db',
  watch: [{ dir: 'inbox', include: ['*.csv'], fileType: 'csv' }],
  handler: { command: ['node', HANDLER_NAME, '{path}'], timeoutMs: 600_000 },
  concurrency: 2,
  stableMs: 2_000,
  retry: { maxRetries: 3, baseDelayMs: 1_000, maxDelayMs: 300_000 },
  onSuccess: { moveTo: 'done' },
  onDead: { moveTo: 'dead' },
  log: { level: 'info' },
  // History is bounded from the first day (docs/retention.md): the daemon purges on a schedule.
  retention: { completed: '30d', dead: '90d', tombstones: '30d' },
};

/** Used when the package's scripts/example-handler.mjs is not there (a trimmed install). */
const FALLBACK_HANDLER = `#!/usr/bin/env node
// Example ckpt handler: counts the lines of one CSV file (the first is the header).
// Contract: exit 0 = done; exit 65 = the file is bad, do not retry; anything else = retry later.
// The last stdout line {"total":n,"filtered":n,"persisted":n} is recorded with the file.
import fs from 'node:fs';
const file = process.argv[2];
if (!file) { console.error('usage: handler.mjs FILE'); process.exit(64); }
const lines = fs.readFileSync(file, 'utf8').split(/\\r?\\n/).filter((l) => l !== '');
const total = Math.max(0, lines.length - 1);
console.log(JSON.stringify({ total, filtered: 0, persisted: total }));
`;

function exampleHandlerSource(): string {
  // src/cli/commands/ and dist/cli/commands/ are both three levels below the package root.
  const here = path.dirname(fileURLToPath(import.meta.url));
  const file = path.resolve(here, '../../../scripts/example-handler.mjs');
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return FALLBACK_HANDLER;
  }
}

export async function initCommand(dirArg: string | undefined): Promise<number> {
  const dir = path.resolve(dirArg ?? '.');
  const configFile = path.join(dir, CONFIG_NAME);
  if (fs.existsSync(configFile)) {
    throw new CliError(EXIT.CANT_CREATE, `${configFile} already exists; not overwriting it (edit it, or init another folder)`);
  }
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw new CliError(EXIT.CANT_CREATE, `${dir} exists and is not a folder`);
  }
  for (const sub of ['inbox', 'done', 'dead', 'var']) fs.mkdirSync(path.join(dir, sub), { recursive: true });

  const handlerFile = path.join(dir, HANDLER_NAME);
  let handlerNote = 'example handler: counts the rows of a CSV file (edit it, or point "handler" elsewhere)';
  try {
    fs.writeFileSync(handlerFile, exampleHandlerSource(), { flag: 'wx', mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    handlerNote = 'already there, kept as it was';
  }
  try {
    fs.writeFileSync(configFile, `${JSON.stringify(STARTER_CONFIG, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError(EXIT.CANT_CREATE, `${configFile} already exists; not overwriting it`);
    }
    throw err;
  }
  // The starter must load as written: if the schema ever moves on, this fails here, not later.
  loadConfig(configFile, { env: {} });

  const rel = path.relative(process.cwd(), dir);
  const cd = rel === '' ? [] : [`  cd ${rel.startsWith('..') ? dir : rel}`];
  const item = (name: string, what: string) => `  ${name.padEnd(19)}${what}`;
  print(
    [
      `Created a ckpt setup in ${dir}:`,
      item(CONFIG_NAME, `watches inbox/ for *.csv and runs ${HANDLER_NAME} on each file`),
      item('', 'keeps the history of completed files 30 days, of dead ones 90 days'),
      item(HANDLER_NAME, handlerNote),
      item('inbox/', 'drop files here'),
      item('done/  dead/', 'where handled files are moved (completed / given up)'),
      item('var/ckpt.db', 'the ledger, created on the first run'),
      '',
      'Next steps:',
      ...cd,
      "  printf 'id,name\\n1,alpha\\n2,beta\\n' > inbox/example.csv",
      '  ckpt run --once        # handle what is in inbox/ now, then exit',
      '  ckpt status            # what happened',
      '  ckpt list              # every file and its outcome',
      '  ckpt run               # keep watching (Ctrl-C stops it cleanly)',
    ].join('\n'),
  );
  return 0;
}
