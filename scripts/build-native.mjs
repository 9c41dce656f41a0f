#!/usr/bin/env node
// Builds ckpt's native part (native/ckpt_native.c) with node-gyp, as `npm ci` does for any
// package with a binding.gyp, but: against the headers of the Node that runs this script
// (no download: `nodedir` is that Node's own prefix when its include/node is there), and
// without failing the install when it cannot be built: ckpt then runs on its portable paths
// and says so once in its log (src/native/addon.ts).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
if (process.platform !== 'linux') {
  console.log('ckpt: native part skipped (Linux only); using the portable paths');
  process.exit(0);
}
const gyp =
  process.env.npm_config_node_gyp ||
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = [gyp, 'rebuild'];
if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (r.status !== 0) {
  console.warn(`ckpt: native part NOT built (node-gyp ${r.status === null ? `killed by ${r.signal}` : `exit ${r.status}`}); ckpt will use its portable paths`);
}
