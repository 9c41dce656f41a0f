/**
 * `ckpt validate`: is this configuration ready to run, here, as this user? One line per check,
 * in doctor's style (ok / warn / FAIL), and every problem at once rather than the first:
 *
 *   config     the file parses and every key is valid (all problems, each with its key path)
 *   folders    watched, moveTo, database and fallback folders exist, are writable where ckpt
 *              writes, and are on the file system the config expects (validate-checks.ts)
 *   handler    the program resolves and is executable, or the module loads and has a default
 *              export (the check `ckpt run` makes at start, shared with doctor)
 *   database   opens read-only (never created), its schema version, whether a process is degraded
 *
 * Exit 0 when nothing failed, 78 (EX_CONFIG) when something did: systemd's ExecStartPre then
 * stops the start, and the unit's RestartPreventExitStatus=78 keeps it from retrying a config
 * that cannot work. A locked or degraded database is a warn: the daemon copes with it.
 */
import type { ConfigOverrides, ResolvedConfig } from '../../config/types.js';
import { checkConfig } from '../../config/check.js';
import { EXIT } from '../exit-codes.js';
import { print, printJson } from '../output.js';
import type { Check } from './doctor.js';
import { handlerChecks } from './doctor-handler.js';
import { folderCheck, folderUses, modeChecks, schemaCheck, sqliteDatabaseChecks } from './validate-checks.js';
import { commandPostgresStore } from '../../store/open-configured.js';

/** A config problem carries its key path (`watch[0].dir`; '' for the whole file). */
export type ValidateCheck = Check & { key?: string };

export interface ValidateJson {
  config: string;
  checks: ValidateCheck[];
  valid: boolean;
  exitCode: number;
}

export async function validateCommand(configPath: string, overrides: ConfigOverrides, opts: { json?: boolean } = {}): Promise<number> {
  const checks = await validate(configPath, overrides);
  const valid = !checks.some((c) => c.level === 'fail');
  const exitCode = valid ? EXIT.OK : EXIT.CONFIG;
  if (opts.json) {
    const out: ValidateJson = { config: configPath, checks, valid, exitCode };
    printJson(out);
  } else {
    const width = Math.max(...checks.map((c) => c.name.length));
    for (const c of checks) print(`${(c.level === 'fail' ? 'FAIL' : c.level).padEnd(5)} ${c.name.padEnd(width)}  ${c.message}`);
    print(valid ? 'valid: ckpt run can start with this configuration' : 'not valid: see the FAIL lines above');
  }
  return exitCode;
}

/** Every check, in the order printed. The later stages run only on a config that resolved. */
export async function validate(configPath: string, overrides: ConfigOverrides = {}): Promise<ValidateCheck[]> {
  const { config, problems } = checkConfig(configPath, { overrides });
  const checks: ValidateCheck[] = problems.map((p) => ({ name: 'config', level: 'fail', message: p.message, key: p.key }));
  if (config === null) {
    checks.push({ name: 'config', level: 'warn', message: 'folders, handler and database not checked: fix the problems above first' });
    return checks;
  }
  if (problems.length === 0) checks.push({ name: 'config', level: 'ok', message: `${configPath} is valid` });
  for (const use of folderUses(config)) checks.push(folderCheck(use));
  checks.push(...(await handlerChecks(config)));
  checks.push(...(await databaseChecks(config)));
  checks.push(...modeChecks(config, Date.now()));
  return checks;
}

async function databaseChecks(config: ResolvedConfig): Promise<Check[]> {
  const db = config.database;
  if (db.kind === 'sqlite') return sqliteDatabaseChecks(db.path, config.lockTimeoutMs);
  // node-postgres is loaded only for a PostgreSQL configuration.
  const { PG_MIGRATIONS } = await import('../../store/postgres/index.js');
  const store = await commandPostgresStore(config, db, 'ckpt-validate');
  try {
    const where = `${store.target}, schema ${db.schema}`;
    return [{ name: 'database', level: 'ok', message: `${where} answers` }, schemaCheck(where, await store.schemaVersion(), PG_MIGRATIONS.at(-1)?.version ?? 0)];
  } catch (err) {
    return [{ name: 'database', level: 'fail', message: `cannot use the PostgreSQL database: ${(err as Error).message}` }];
  } finally {
    await store.close();
  }
}
