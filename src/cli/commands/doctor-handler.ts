/**
 * `ckpt doctor`'s checks of what the ledger cannot say about itself: can the configured
 * handler run at all (the same check `ckpt run` makes at start), and are there dead files
 * waiting for a person.
 */
import { allHandlers } from '../../config/routes.js';
import type { HandlerConfig, ResolvedConfig } from '../../config/types.js';
import { handlerProblemAtStart, programCheckOf } from '../../run/handler-availability.js';
import { createHandler } from '../../run/handler.js';
import type { Check } from './doctor-check.js';

export const DEAD_FILES_CHECK = 'dead files';

/**
 * FAIL when `ckpt run` would refuse to start for a handler (exit 78): a command whose program
 * cannot be started by this user, or a module that does not load (through the module loader
 * the daemon uses, so the module's top-level code runs here too). One check for the top-level
 * handler (`handler`) and one per route with a handler of its own (`watch[1].handler`).
 */
export async function handlerChecks(config: ResolvedConfig): Promise<Check[]> {
  const out: Check[] = [];
  for (const { key, handler } of allHandlers(config)) out.push(await handlerCheck(config.configPath, key, handler));
  return out;
}

async function handlerCheck(configPath: string, key: string, h: HandlerConfig): Promise<Check> {
  if (h.kind === 'module') {
    try {
      await createHandler({ module: h.module, timeoutMs: h.timeoutMs });
      return { name: key, level: 'ok', message: `module ${h.module} loads` };
    } catch (err) {
      const first = ((err as Error).message ?? String(err)).split('\n', 1)[0];
      return { name: key, level: 'fail', message: `${configPath}: ${key}.module: ${first}` };
    }
  }
  const problem = handlerProblemAtStart({ handler: h, configPath }, key);
  if (problem !== null) return { name: key, level: 'fail', message: `${problem} (ckpt run refuses to start)` };
  const c = programCheckOf({ handler: h })?.();
  return { name: key, level: 'ok', message: c?.ok ? `${c.resolved} can be run by this user` : 'command' };
}

/** warn with the count and the commands to look at them and requeue them; ok when none. */
export function deadFilesCheck(dead: number, configPath: string): Check {
  if (dead === 0) return { name: DEAD_FILES_CHECK, level: 'ok', message: 'none' };
  return {
    name: DEAD_FILES_CHECK,
    level: 'warn',
    message:
      `${dead} file(s) used up their retries or failed permanently: see them with ` +
      `\`ckpt list --status dead --config ${configPath}\`, requeue with \`ckpt retry --dead --config ${configPath}\``,
  };
}

/** The last line of the text report. */
export function doctorSummary(checks: readonly Check[]): string {
  if (checks.some((c) => c.level === 'fail')) return 'a person is needed: see the FAIL lines above';
  if (checks.some((c) => c.name === DEAD_FILES_CHECK && c.level === 'warn')) return 'dead files wait for a person: see the "dead files" line above';
  return 'nothing needs a person';
}
