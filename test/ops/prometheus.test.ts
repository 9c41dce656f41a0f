/**
 * What config/ ships for Prometheus and Grafana: the alert rules pass `promtool check rules`
 * and their unit tests (`promtool test rules` over input series, test/ops/prometheus/), and the
 * Grafana dashboard parses, its queries are valid PromQL, and every metric they and the rules
 * name is in the /metrics output of a real daemon.
 *
 * promtool comes from Debian's prometheus package (.ci/run installs it). Without it these
 * tests are skipped, except in CI (CI=true), where a missing promtool is a failure.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { drop, killDaemons, setup, startDaemon, started } from '../helpers/daemon.js';
import { REPO } from '../helpers/spawn.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

afterEach(() => {
  killDaemons();
  cleanupTmpDirs();
});

const RULES = path.join(REPO, 'config/prometheus/ckpt-alerts.yml');
const RULE_TESTS = path.join(REPO, 'test/ops/prometheus/ckpt-alerts.test.yml');
const DASHBOARD = path.join(REPO, 'config/grafana/ckpt-dashboard.json');

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const skipPromtool = !hasPromtool && process.env.CI !== 'true';

function promtool(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`promtool cannot run (install Debian's prometheus package): ${r.error.message}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: { expr: string }[];
}

const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { uid: string; title: string; panels: Panel[] };
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
const ruleExprs = [...fs.readFileSync(RULES, 'utf8').matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);

/** The dashboard's template variables as Prometheus would see them after Grafana filled them in. */
function concrete(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', 'ckpt').replaceAll('$instance', '.*');
}

/** Metric names a query reads (ckpt's own and the process_* ones it exports; `up` is Prometheus's). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:ckpt|process)_[a-z_]+)\b/g)].map((m) => m[1]!);
}

describe.skipIf(skipPromtool)('alert rules (promtool)', () => {
  it('promtool check rules: the shipped file is valid', () => {
    const r = promtool('check', 'rules', RULES);
    expect(r.out).toMatch(/SUCCESS: 6 rules found/);
    expect(r.code).toBe(0);
  });

  it('promtool test rules: each alert fires when it should and not before', () => {
    const r = promtool('test', 'rules', RULE_TESTS);
    expect(r.out).toContain('SUCCESS');
    expect(r.code, r.out).toBe(0);
  });

  it('the rule tests catch a changed rule: degraded for 1 minute instead of 5 fails them', () => {
    const dir = tmpDir();
    const changed = fs.readFileSync(RULES, 'utf8').replace(/(expr: ckpt_degraded == 1\n\s+for:) 5m/, '$1 1m');
    expect(changed).not.toBe(fs.readFileSync(RULES, 'utf8'));
    fs.mkdirSync(path.join(dir, 'config/prometheus'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'test/ops/prometheus'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'config/prometheus/ckpt-alerts.yml'), changed);
    fs.copyFileSync(RULE_TESTS, path.join(dir, 'test/ops/prometheus/ckpt-alerts.test.yml'));
    const r = promtool('test', 'rules', path.join(dir, 'test/ops/prometheus/ckpt-alerts.test.yml'));
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/alertname: CkptDegraded, time: 5m/);
  });

  it("the dashboard's queries are valid PromQL (checked as recording rules)", () => {
    const dir = tmpDir();
    const file = path.join(dir, 'dashboard-queries.yml');
    const rules = dashboardExprs.map((e, i) => `      - record: dashboard:query${i}\n        expr: ${JSON.stringify(concrete(e))}`);
    fs.writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    const r = promtool('check', 'rules', file);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`SUCCESS: ${dashboardExprs.length} rules found`);
  });
});

describe('Grafana dashboard', () => {
  it('parses, with unique panel ids and a query in every panel that is not a row', () => {
    expect(dashboard.uid).toBe('ckpt-overview');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.expr.trim(), p.title).not.toBe('');
    }
  });

  it('every metric the dashboard and the alert rules read is in a real daemon\'s /metrics', async () => {
    const s = setup({ http: { port: 0 } });
    const d = startDaemon(s);
    const port = (await d.waitForLog((l) => l.msg === 'serving /metrics and /healthz')).port as number;
    await started(d);
    drop(s.inbox, 'a.csv', 'x\n');
    // After one completion every labelled series has a sample, histograms included.
    const text = await waitFor(
      async () => {
        const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return /^ckpt_completions_total\{[^}]*\} 1$/m.test(t) && /^ckpt_last_heartbeat_timestamp_seconds \d/m.test(t) ? t : undefined;
      },
      { message: 'a completion and a heartbeat in /metrics' },
    );
    // The runner labels by the configured folder and its file type (the folder's name here).
    const labels = `folder="${s.inbox}",file_type="inbox"`;
    expect(text).toContain(`ckpt_completions_total{${labels}} 1\n`);
    expect(text).toContain(`ckpt_handled_bytes_total{${labels}} 2\n`);
    expect(text).toContain(`ckpt_handler_duration_seconds_count{outcome="completed",${labels}} 1\n`);
    expect(text).toMatch(/^ckpt_build_info\{version="[^"]+",store="sqlite"\} 1$/m);
    const exposed = new Set([...text.matchAll(/^([a-z_:]+)(?:\{| )/gm)].map((m) => m[1]!));
    const used = new Set([...dashboardExprs, ...ruleExprs].flatMap(metricNames));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((n) => !exposed.has(n))).toEqual([]);
  });
});
