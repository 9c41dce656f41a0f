#!/usr/bin/env node
/**
 * Lists import circles among the TypeScript files under a folder (default: src), one per line,
 * and exits 1 when there is any. Static `import`/`export ... from` with a relative specifier
 * count, type-only ones included (a type and a factory sharing one file make a circle too);
 * `import()` does not (it is loaded lazily, when a code path needs it).
 *
 *   node scripts/import-cycles.mjs [folder]
 */
import fs from 'node:fs';
import path from 'node:path';

/** The TypeScript sources under `root` (declaration files left out). */
export function sourceFiles(root) {
  const files = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) files.push(p);
    }
  };
  walk(root);
  return files;
}

export function importGraph(root) {
  const files = sourceFiles(root);
  const known = new Set(files);
  const graph = new Map();
  const specifier = /^\s*(?:import|export)\s[^;]*?\sfrom\s+['"](\.[^'"]+)['"]|^\s*import\s+['"](\.[^'"]+)['"]/gm;
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    const deps = new Set();
    for (const m of text.matchAll(specifier)) {
      const target = path.join(path.dirname(f), (m[1] ?? m[2]).replace(/\.js$/, '.ts'));
      if (known.has(target)) deps.add(target);
    }
    graph.set(f, [...deps]);
  }
  return graph;
}

/** Strongly connected components with more than one file (or a file importing itself). */
export function cycles(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = process.argv[2] ?? 'src';
  const found = cycles(importGraph(root));
  for (const c of found) console.log(c.join(' <-> '));
  console.log(`${found.length} import circle(s) under ${root}`);
  process.exitCode = found.length > 0 ? 1 : 0;
}
