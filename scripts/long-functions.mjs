#!/usr/bin/env node
/**
 * Lists functions, methods and constructors longer than a number of lines (default 60) in the
 * TypeScript files under a folder (default: src), as `file:line name N lines`. A long function
 * that stays long says why in a comment line above it; this list is where to look for them.
 *
 *   node scripts/long-functions.mjs [folder] [lines]
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { sourceFiles } from './import-cycles.mjs';

const [root = 'src', limit = '60'] = process.argv.slice(2);
const files = sourceFiles(root);
for (const f of files.sort()) {
  const src = ts.createSourceFile(f, fs.readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true);
  const line = (pos) => src.getLineAndCharacterOfPosition(pos).line + 1;
  const visit = (n) => {
    const fn = ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isConstructorDeclaration(n) || ts.isArrowFunction(n) || ts.isFunctionExpression(n) || ts.isGetAccessor(n);
    if (fn && n.body) {
      const lines = line(n.end) - line(n.getStart()) + 1;
      const name = ts.isConstructorDeclaration(n) ? 'constructor' : (n.name?.getText() ?? (ts.isVariableDeclaration(n.parent) ? n.parent.name.getText() : '(anonymous)'));
      if (lines > Number(limit)) console.log(`${f}:${line(n.getStart())} ${name} ${lines} lines`);
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
}
