/**
 * Lets a module handler anywhere on disk `import { PermanentError } from 'ckpt'`, as the README
 * shows. Node resolves a bare specifier from the importing file's folder upwards, so a handler in
 * /srv/handlers finds no `ckpt` package unless someone installed one there. A resolve hook
 * (module.register, Node >= 20.6) maps `ckpt` to this package's own entry point, but only when
 * the normal resolution fails: a handler whose folder has its own copy of ckpt keeps it
 * (PermanentError is recognised across copies, see errors.ts).
 *
 * The hook is registered only when a module handler is loaded, so command-handler daemons never
 * run their imports through the hooks thread.
 */
import module from 'node:module';

/** The hook, as source: a data: URL needs no file beside the compiled output. */
const HOOK = `
let entry;
export function initialize(data) { entry = data.entry; }
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (specifier === 'ckpt' && err && err.code === 'ERR_MODULE_NOT_FOUND') return { url: entry, shortCircuit: true };
    throw err;
  }
}
`;

let registered = false;

/**
 * Registers the hook once per process. The entry point is this package's own `ckpt` (found by
 * self-reference through package.json "exports"); where that cannot be found (a test runner that
 * does not implement import.meta.resolve), nothing is registered and imports resolve as before.
 */
export function provideCkptSpecifier(): void {
  if (registered) return;
  registered = true;
  let entry: string;
  try {
    entry = import.meta.resolve('ckpt');
  } catch {
    return;
  }
  module.register(`data:text/javascript,${encodeURIComponent(HOOK)}`, { data: { entry } });
}
