/**
 * `ckpt doctor`'s checks of what the ledger cannot say about itself: can the configured
 * handler run at all (the same check `ckpt run` makes at start), and are there dead files
 * waiting for a person.
 */
import type { ResolvedConfig } from '../../config/types.js';
import { handlerProblemAtStart, programCheckOf } from '../../run/handler-availability.js';
import { createHandler } from '../../run/handler.js';
import type { Check } from './doctor-check.js';

export const DEAD_FILES_CHECK = 'dead files';

/**
 * FAIL when `ckpt run` would refuse to start for its handler (exit 78): a command whose
 * program cannot be started by this user, or a module that does not load (through the module
 * loader the daemon uses, so the module's top-level code runs here too).
 */
export async function handlerCheck(config: ResolvedConfig): Promise<Check> {
  const h = config.handler;
  if (h.kind === 'module') {
    try {
      await createHandler({ module: h.module, timeoutMs: h.timeoutMs });
      return { name: 'handler', level: 'ok', message: `module ${h.module} loads` };
    } catch (err) {
      const first = ((err as Error).message ?? String(err)).split('\n', 1)[0];
      return { name: 'handler', level: 'fail', message: `${config.configPath}: handler.module: ${first}` };
    }
  }
  const problem = handlerProblemAtStart(config);
  if (problem !== null) return { name: 'handler', level: 'fail', message: `${problem} (ckpt run refuses to start)` };
  const c = programCheckOf(config)?.();
  return { name: 'handler', level: 'ok', message: c?.ok ? `${c.resolved} can be run by this user` : 'command' };
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
