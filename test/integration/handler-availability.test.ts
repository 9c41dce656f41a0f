/**
 * A command handler whose program is missing: refused at start (exit 78, one line naming
 * handler.command[0]); gone while running (an upgrade): claiming pauses, no attempt is
 * counted, status, /healthz, the gauge and the log say so, and the files complete once the
 * program is back. Real daemons, real folders, a real program file renamed away and back.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StatusJson } from '../../src/cli/commands/status.js';
import { RECORDER, type Setup, cli, drop, killDaemons, rows, setup, startDaemon, started } from '../helpers/daemon.js';
import { cleanupTmpDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

/** bin/loader in the setup folder: a shell script that runs the recorder (executable). */
function installLoader(dir: string, mode = 0o755): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const loader = path.join(bin, 'loader');
  fs.writeFileSync(loader, `#!/bin/sh\nexec "${process.execPath}" "${RECORDER}" "$@"\n`, { mode });
  fs.chmodSync(loader, mode);
  return loader;
}

/** A setup whose handler is bin/loader, given relative to the config folder (as its cwd is). */
function loaderSetup(overrides: Record<string, unknown> = {}): Setup & { loader: string } {
  const s = setup({ handler: { command: ['bin/loader', '{path}'] }, ...overrides });
  return { ...s, loader: installLoader(s.dir) };
}

describe('handler program checked at start', () => {
  it('a program that is not in PATH: exit 78 with one line naming the config file, the key and the program', async () => {
    const s = setup({ handler: { command: ['no-such-loader-x7', '{path}'] } });
    const d = startDaemon(s);
    const { code } = await d.exited;
    expect(code).toBe(78);
    const fatal = d.lines.filter((l) => l.level === 'fatal');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!.msg).toMatch(new RegExp(`^${s.config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: handler\\.command\\[0\\]: cannot run "no-such-loader-x7": not found in PATH \\(`));
    expect(fatal[0]!.msg).not.toMatch(/\n/);
    expect(d.lines.some((l) => l.msg === 'ckpt running')).toBe(false);
  });

  it('a program relative to the config folder without the execute bit: exit 78, says so', async () => {
    const s = loaderSetup();
    fs.chmodSync(s.loader, 0o644);
    const d = startDaemon(s);
    expect((await d.exited).code).toBe(78);
    const fatal = d.lines.find((l) => l.level === 'fatal');
    expect(fatal?.msg).toMatch(/handler\.command\[0\]: cannot run "bin\/loader": .*\/bin\/loader is not executable by this user/);
  });

  it('a program relative to the config folder that exists: starts and handles files', async () => {
    const s = loaderSetup();
    const d = startDaemon(s);
    await started(d);
    const f = drop(s.inbox, 'ok.csv', 'a,b\n');
    await waitFor(() => rows(s.db).find((r) => r.file_url === f && r.status === 'completed'), { message: 'ok.csv completed' });
  });
});

describe('handler program gone while running', () => {
  it('pauses claiming, keeps every retry, reports it, and completes the files once it is back', async () => {
    const s = loaderSetup({ http: { port: 0 }, retry: { maxRetries: 1, baseDelayMs: 20, maxDelayMs: 50 } });
    const d = startDaemon(s);
    const port = (await d.waitForLog((l) => l.msg === 'serving /metrics and /healthz')).port as number;
    await started(d);
    const first = drop(s.inbox, 'first.csv', 'x\n');
    await waitFor(() => rows(s.db).find((r) => r.file_url === first && r.status === 'completed'), { message: 'first.csv completed' });

    // The upgrade: the program is renamed away, and files keep arriving.
    fs.renameSync(s.loader, `${s.loader}.old`);
    const files = ['a.csv', 'b.csv', 'c.csv'].map((n) => drop(s.inbox, n, `${n}\n`));
    const warn = await d.waitForLog((l) => l.level === 'warn' && String(l.msg).startsWith('handler program unavailable'));
    expect(warn.why).toMatch(/bin\/loader does not exist/);

    // Given back, not failed: the runs that found the program gone are recorded 'released' (no
    // attempt counted), every file is pending with its whole budget. (Before, with maxRetries 1,
    // each was dead within a few hundred ms.)
    await waitFor(() => {
      const r = rows(s.db).filter((x) => files.includes(x.file_url as string));
      const released = rows(s.db, "SELECT file_url FROM file_attempts WHERE outcome = 'released'");
      return released.length > 0 && r.length === 3 && r.every((x) => x.status === 'pending' && x.retry_count === 0);
    }, { message: 'the three files pending, retry_count 0, at least one run given back' });

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(503);
    const hb = (await health.json()) as { reason: string; handler: { available: boolean; why: string } };
    expect(hb.handler).toMatchObject({ available: false });
    expect(hb.reason).toMatch(/handler program unavailable since .*bin\/loader does not exist/);
    expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toMatch(/^ckpt_handler_unavailable 1$/m);

    const st = await cli(['status', '--json', '--config', s.config], { cwd: s.dir });
    expect(st.code, st.stderr).toBe(0);
    const report = JSON.parse(st.stdout) as StatusJson;
    expect(report.handler.available).toBe(false);
    expect(report.handler.unavailable[0]?.why).toMatch(/bin\/loader does not exist/);
    const text = await cli(['status', '--config', s.config], { cwd: s.dir });
    expect(text.stdout).toMatch(/^handler +UNAVAILABLE since .* on .*: .*bin\/loader does not exist; claiming paused, retries kept$/m);

    // Back: the files complete, each with exactly one attempt that counted (the one that ran).
    fs.renameSync(`${s.loader}.old`, s.loader);
    await d.waitForLog((l) => l.msg === 'handler program is back: claiming resumes');
    await waitFor(() => rows(s.db).filter((r) => files.includes(r.file_url as string) && r.status === 'completed').length === 3, { message: 'all completed' });
    const attempts = rows(s.db, "SELECT file_url, count(*) AS n FROM file_attempts WHERE outcome <> 'released' GROUP BY file_url");
    for (const f of files) expect(attempts.find((a) => a.file_url === f)?.n).toBe(1);
    expect(rows(s.db).filter((r) => files.includes(r.file_url as string)).map((r) => r.retry_count)).toEqual([0, 0, 0]);
    expect(d.lines.filter((l) => String(l.msg).startsWith('handler program unavailable'))).toHaveLength(1);
    expect(d.lines.filter((l) => l.msg === 'handler program is back: claiming resumes')).toHaveLength(1);

    const healthAfter = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(healthAfter.status).toBe(200);
    const after = JSON.parse((await cli(['status', '--json', '--config', s.config], { cwd: s.dir })).stdout) as StatusJson;
    expect(after.handler).toEqual({ available: true, unavailable: [] });
  });

  it("with routes, a route whose program is gone pauses alone: the other feed's files complete meanwhile", async () => {
    const s = loaderSetup({ retry: { maxRetries: 1, baseDelayMs: 20, maxDelayMs: 50 } });
    const loaderB = path.join(s.dir, 'bin', 'loader-b');
    fs.copyFileSync(s.loader, loaderB);
    fs.chmodSync(loaderB, 0o755);
    const b = path.join(s.dir, 'b');
    fs.mkdirSync(b);
    const cfg = JSON.parse(fs.readFileSync(s.config, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(s.config, JSON.stringify({ ...cfg, watch: [{ dir: 'inbox' }, { dir: 'b', handler: { command: ['bin/loader-b', '{path}'] } }] }));
    const d = startDaemon(s);
    await started(d);

    fs.renameSync(loaderB, `${loaderB}.old`);
    const bFiles = ['b1.csv', 'b2.csv'].map((n) => drop(b, n, `${n}\n`));
    const warn = await d.waitForLog((l) => l.level === 'warn' && String(l.msg).startsWith('handler program unavailable'));
    expect(warn.why).toMatch(/bin\/loader-b does not exist/);
    const inboxFiles = ['i1.csv', 'i2.csv', 'i3.csv'].map((n) => drop(s.inbox, n, `${n}\n`));
    await waitFor(() => rows(s.db).filter((r) => inboxFiles.includes(r.file_url as string) && r.status === 'completed').length === 3, { message: "the other feed's files completed" });
    const bRows = rows(s.db).filter((r) => bFiles.includes(r.file_url as string));
    expect(bRows.map((r) => [r.status, r.retry_count])).toEqual([
      ['pending', 0],
      ['pending', 0],
    ]);

    fs.renameSync(`${loaderB}.old`, loaderB);
    await d.waitForLog((l) => l.msg === 'handler program is back: claiming resumes');
    await waitFor(() => rows(s.db).filter((r) => bFiles.includes(r.file_url as string) && r.status === 'completed').length === 2, { message: "the route's files completed" });
  });
});
