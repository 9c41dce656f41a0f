/**
 * The systemd units and the install script: required keys present, the template in step with
 * the single unit, `systemd-analyze verify` clean where it exists, and the install script
 * idempotent (staged under --root, so the test needs no root and touches no real system).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, fileSchema } from '../../src/config/schema.js';
import { exec as run, killAll } from '../cli/cli-helper.js';
import { CLI, setup } from '../helpers/daemon.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killAll();
  cleanupTmpDirs();
});

type Unit = Record<string, Record<string, string[]>>;

/** systemd's unit syntax, as far as these files use it: sections, Key=Value, comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      unit[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    expect(eq, `not Key=Value: ${line}`).toBeGreaterThan(0);
    const key = line.slice(0, eq).trim();
    ((unit[section] ??= {})[key] ??= []).push(line.slice(eq + 1).trim());
  }
  return unit;
}

const UNITS = ['ckpt.service', 'ckpt@.service'].map((name) => ({ name, file: path.join(REPO, 'config', name) }));
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
/** systemd is the init here (sd_booted()'s test) and we may start system units. */
const systemdRuns = fs.existsSync('/run/systemd/system') && process.getuid?.() === 0;

/** The unit with ExecStart's program swapped for one that exists here (verify checks it). */
function verifiable(text: string): string {
  return text.replace(/^(ExecStart(?:Pre)?)=\S+/gm, `$1=${process.execPath}`);
}

/** Where each unit reads its config, keeps its database and may write (the template: per feed). */
const PLACES: Record<string, { config: string; state: string; rw: string }> = {
  'ckpt.service': { config: '/etc/ckpt/ckpt.config.json', state: 'ckpt', rw: '/srv/ckpt' },
  'ckpt@.service': { config: '/etc/ckpt/%i.json', state: 'ckpt/%i', rw: '/srv/ckpt/%i' },
};

describe.each(UNITS)('$name', ({ name, file }) => {
  const places = PLACES[name]!;
  const text = fs.readFileSync(file, 'utf8');
  const unit = parseUnit(text);
  const svc = unit.Service ?? {};
  const one = (k: string) => {
    expect(svc[k], k).toHaveLength(1);
    return svc[k]![0]!;
  };

  it('has the keys the deployment relies on', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('all');
    expect(one('User')).toBe('ckpt');
    expect(one('Group')).toBe('ckpt');
    expect(one('StateDirectory')).toBe(places.state);
    expect(one('WorkingDirectory')).toBe(`/var/lib/${places.state}`);
    expect(one('Restart')).toBe('on-failure');
    expect(one('KillMode')).toBe('control-group');
    expect(one('ExecStart')).toMatch(/^\/\S+ckpt run --config /);
    expect(one('ExecStart').endsWith(` run --config ${places.config}`)).toBe(true);
    // systemctl reload: SIGHUP to ckpt alone (the handlers in its cgroup must not get it).
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    // validate first, with the same program and config; no '+' or '!' prefix: it must run as
    // User= in the same sandbox to see what the daemon will see.
    expect(one('ExecStartPre')).toBe(one('ExecStart').replace(' run ', ' validate '));
    for (const [k, v] of [['NoNewPrivileges', 'true'], ['ProtectSystem', 'strict'], ['ProtectHome', 'true'], ['PrivateTmp', 'true']]) expect(one(k!), k).toBe(v);
    expect(one('ReadWritePaths')).toBe(places.rw);
    expect(one('RestartPreventExitStatus').split(' ')).toEqual(expect.arrayContaining(['64', '78']));
    // V8's JIT needs W+X pages: this setting would crash node at start.
    expect(svc.MemoryDenyWriteExecute).toBeUndefined();
    expect(unit.Install?.WantedBy).toEqual(['multi-user.target']);
  });

  it('gives the drain time to finish: TimeoutStopSec > shutdownGraceMs + the handler kill grace', () => {
    const stopMs = Number(/^(\d+)s?$/.exec(one('TimeoutStopSec'))![1]) * 1000;
    expect(stopMs).toBeGreaterThan(DEFAULTS.shutdownGraceMs + DEFAULTS.killGraceMs);
  });

  it.skipIf(!hasAnalyze)('passes systemd-analyze verify without a warning', async () => {
    const dir = tmpDir();
    const copy = path.join(dir, path.basename(file));
    fs.writeFileSync(copy, verifiable(text));
    const r = await run('systemd-analyze', ['verify', copy]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('the template', () => {
  it('is ckpt.service with the config, state and write folders per feed, so the two cannot drift apart', () => {
    const [single, template] = UNITS.map((u) => parseUnit(fs.readFileSync(u.file, 'utf8')));
    const perFeed = ['ExecStartPre', 'ExecStart', 'StateDirectory', 'WorkingDirectory', 'ReadWritePaths'];
    const rest = (svc: Record<string, string[]>) => Object.fromEntries(Object.entries(svc).filter(([k]) => !perFeed.includes(k)));
    expect(rest(template!.Service!)).toEqual(rest(single!.Service!));
    // Only the config file's name and the folders differ: %i is the feed's name in each.
    const asFeed = (v: string) => v.replace('/etc/ckpt/ckpt.config.json', '/etc/ckpt/%i.json').replace(/^ckpt$/, 'ckpt/%i').replace(/^(\/var\/lib\/ckpt|\/srv\/ckpt)$/, '$1/%i');
    for (const k of perFeed) expect(template!.Service![k], k).toEqual(single!.Service![k]!.map(asFeed));
    expect(template!.Unit?.Description?.[0]).toContain('/etc/ckpt/%i.json');
  });
});

describe('scripts/install-service.sh', () => {
  const script = path.join(REPO, 'scripts', 'install-service.sh');

  it('--help explains itself; a bad option is a usage error', async () => {
    const help = await run('bash', [script, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: install-service\.sh/);
    for (const opt of ['--user', '--bin', '--config-dir', '--data-dir', '--feed', '--no-enable', '--root']) expect(help.stdout).toContain(opt);
    const bad = await run('bash', [script, '--frobnicate']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('unknown option: --frobnicate');
  });

  it('stages user folders, config, handler and unit; a second run changes nothing', async () => {
    const root = tmpDir('ckpt-root-');
    const args = [script, '--root', root, '--bin', `${process.execPath} /opt/ckpt/dist/cli/main.js`, '--data-dir', '/data/ingest'];
    const first = await run('bash', args);
    expect(first.code, first.stderr).toBe(0);
    const snapshot = () =>
      Object.fromEntries(
        fs
          .readdirSync(root, { recursive: true, withFileTypes: true })
          .map((e) => path.join(e.parentPath, e.name))
          .sort()
          .map((p) => [path.relative(root, p), fs.statSync(p).isDirectory() ? 'dir' : fs.readFileSync(p, 'utf8')]),
      );
    const after1 = snapshot();
    for (const p of ['etc/ckpt/ckpt.config.json', 'etc/ckpt/handler.mjs', 'etc/systemd/system/ckpt.service', 'data/ingest/inbox', 'data/ingest/done', 'data/ingest/dead', 'var/lib/ckpt']) {
      expect(after1[p], p).toBeDefined();
    }
    const unitText = after1['etc/systemd/system/ckpt.service'] as string;
    expect(unitText).toContain(`ExecStart=${process.execPath} /opt/ckpt/dist/cli/main.js run --config /etc/ckpt/ckpt.config.json`);
    expect(unitText).toContain(`ExecStartPre=${process.execPath} /opt/ckpt/dist/cli/main.js validate --config /etc/ckpt/ckpt.config.json`);
    expect(unitText).toMatch(/^ReadWritePaths=\/data\/ingest$/m);
    expect(unitText).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(first.stdout).toContain('systemctl reload ckpt.service');
    const config = JSON.parse(after1['etc/ckpt/ckpt.config.json'] as string) as Record<string, unknown>;
    expect(config).toMatchObject({ database: '/var/lib/ckpt/ckpt.db', watch: [{ dir: '/data/ingest/inbox' }], onSuccess: { moveTo: '/data/ingest/done' }, onDead: { moveTo: '/data/ingest/dead' } });

    // The starter passes the config schema as written (its folders exist only on the target box).
    expect(fileSchema.safeParse(config).success).toBe(true);

    fs.writeFileSync(path.join(root, 'etc/ckpt/ckpt.config.json'), '{"edited": true}\n');
    const second = await run('bash', args);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('ckpt.config.json: exists, kept');
    expect(second.stdout).toContain('ckpt.service: unchanged');
    expect(snapshot()).toEqual({ ...after1, 'etc/ckpt/ckpt.config.json': '{"edited": true}\n' });

    if (hasAnalyze) {
      const r = await run('systemd-analyze', ['verify', path.join(root, 'etc/systemd/system/ckpt.service')]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
  });

  it('--feed NAME installs the template: a config, folders and a state folder per feed', async () => {
    const root = tmpDir('ckpt-root-');
    const r = await run('bash', [script, '--root', root, '--bin', process.execPath, '--data-dir', '/data/ingest', '--feed', 'orders', '--feed', 'invoices']);
    expect(r.code, r.stderr).toBe(0);
    const unitFile = path.join(root, 'etc/systemd/system/ckpt@.service');
    expect(fs.existsSync(path.join(root, 'etc/systemd/system/ckpt.service'))).toBe(false);
    const unit = parseUnit(fs.readFileSync(unitFile, 'utf8')).Service!;
    expect(unit.ExecStart).toEqual([`${process.execPath} run --config /etc/ckpt/%i.json`]);
    expect(unit.ExecStartPre).toEqual([`${process.execPath} validate --config /etc/ckpt/%i.json`]);
    expect(unit.ReadWritePaths).toEqual(['/data/ingest/%i']);
    expect(r.stdout).toContain('ckpt@orders.service ckpt@invoices.service');
    for (const feed of ['orders', 'invoices']) {
      const config = JSON.parse(fs.readFileSync(path.join(root, `etc/ckpt/${feed}.json`), 'utf8')) as Record<string, unknown>;
      expect(config).toMatchObject({ database: `/var/lib/ckpt/${feed}/ckpt.db`, watch: [{ dir: `/data/ingest/${feed}/inbox` }], onDead: { moveTo: `/data/ingest/${feed}/dead` } });
      expect(fileSchema.safeParse(config).success).toBe(true);
      for (const p of [`data/ingest/${feed}/inbox`, `data/ingest/${feed}/done`, `var/lib/ckpt/${feed}`]) expect(fs.statSync(path.join(root, p)).isDirectory(), p).toBe(true);
    }
    if (hasAnalyze) {
      // The instance as systemd would run it, with the feed's name filled in.
      const copy = path.join(tmpDir(), 'ckpt@orders.service');
      fs.writeFileSync(copy, verifiable(fs.readFileSync(unitFile, 'utf8')));
      const v = await run('systemd-analyze', ['verify', copy]);
      expect(v.stderr).toBe('');
      expect(v.code).toBe(0);
    }
    const bad = await run('bash', [script, '--root', root, '--bin', process.execPath, '--feed', '../etc']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain("--feed: expected a name of letters, digits, - and _, got '../etc'");
  });
});

describe('systemctl reload', () => {
  it('reaches ckpt as SIGHUP: the service stays active and the changed key is applied', async (ctx) => {
    if (!systemdRuns) {
      const why =
        'systemd is not the init here (no /run/systemd/system), or not root: systemctl reload cannot run; ' +
        'the SIGHUP it sends is tested against a real daemon in test/integration/reload.test.ts';
      // Also on stderr: the default reporter shows a skip's note only in verbose mode.
      console.warn(`skipped: ${why}`);
      ctx.skip(why);
    }
    const s = setup({ log: { level: 'info', format: 'json' } });
    const out = path.join(s.dir, 'daemon.log');
    const unit = `ckpt-reload-test-${process.pid}.service`;
    const [single] = UNITS.map((u) => parseUnit(fs.readFileSync(u.file, 'utf8')));
    const reload = single!.Service!.ExecReload![0]!;
    const started = await run('systemd-run', [
      `--unit=${unit}`,
      '--property=Type=notify',
      '--property=NotifyAccess=all',
      `--property=ExecReload=${reload}`,
      `--property=StandardOutput=file:${out}`,
      `--working-directory=${s.dir}`,
      process.execPath,
      CLI,
      'run',
      '--config',
      s.config,
    ]);
    expect(started.code, started.stderr).toBe(0);
    try {
      const cfg = JSON.parse(fs.readFileSync(s.config, 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(s.config, JSON.stringify({ ...cfg, concurrency: 3 }));
      const r = await run('systemctl', ['reload', unit]);
      expect(r.code, r.stderr).toBe(0);
      const lines = () => fs.readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      const line = await waitFor(() => lines().find((l) => String(l.msg).startsWith('configuration reloaded')));
      expect(line.changed).toEqual(['concurrency']);
      expect((await run('systemctl', ['is-active', unit])).stdout.trim()).toBe('active');
    } finally {
      await run('systemctl', ['stop', unit]);
    }
  });
});
