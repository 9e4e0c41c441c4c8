// Proves the deploy/ files hold together. promtool (Debian's prometheus package) accepts the alert
// rules, passes their unit tests (every alert fires on one history and stays silent on another),
// accepts the Prometheus config with each target layout, and parses every dashboard query. Every
// metric name, label name and label value the alerts and the dashboard use is one a running
// Stockhold really exposes: a real harness serves real traffic (stock, reservations, a commit
// through the worker, a release, a dry-run reconcile) and its GET /metrics is the reference; the
// PromQL name checker is first shown rejecting a misspelt name. docker-compose.yml, read with
// regexes (no YAML package is installed), runs Prometheus and Grafana only under the
// `observability` profile, with pinned images, loopback ports and mounts of files that exist.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSku, idempotencyKey, startHarness, type Harness } from './support/harness';

const root = join(__dirname, '..');
const prometheusDir = join(root, 'deploy', 'prometheus');
const targetsDir = join(prometheusDir, 'targets');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

// ---- promtool ------------------------------------------------------------------------------

const promtoolCandidates = ['/usr/bin/promtool', '/usr/local/bin/promtool'];
/** promtool finishes in well under a second; a hung one fails the test instead of stalling it. */
const promtoolTimeoutMs = 20_000;

function promtool(args: readonly string[], cwd = root): { status: number | null; output: string } {
  const path = promtoolCandidates.find((candidate) => existsSync(candidate));
  if (path === undefined) {
    throw new Error(`promtool not found (looked in ${promtoolCandidates.join(', ')}): apt-get install prometheus`);
  }
  const result = spawnSync(path, args, { cwd, encoding: 'utf8', timeout: promtoolTimeoutMs });
  if (result.error !== undefined) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function expectPromtoolSuccess(args: readonly string[], cwd = root): string {
  const { status, output } = promtool(args, cwd);
  expect(status, `promtool ${args.join(' ')}\n${output}`).toBe(0);
  return output;
}

// ---- reading the YAML files without a YAML parser ------------------------------------------

/** The value of every `expr:` key: inline, or a block scalar (`|`, `>`) of deeper-indented lines. */
function yamlExpressions(text: string): string[] {
  const lines = text.split('\n');
  const found: string[] = [];
  lines.forEach((line, index) => {
    const match = /^(\s*)(?:- )?expr:\s*(.*)$/.exec(line);
    if (match === null) return;
    const indent = (match[1] ?? '').length;
    const value = (match[2] ?? '').trim();
    if (value === '|' || value === '>' || value === '|-' || value === '>-') {
      const block: string[] = [];
      for (let next = index + 1; next < lines.length; next += 1) {
        const candidate = lines[next] ?? '';
        if (candidate.trim() !== '' && candidate.length - candidate.trimStart().length <= indent) break;
        block.push(candidate.trim());
      }
      found.push(block.join(' ').trim());
    } else {
      found.push(value.replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1'));
    }
  });
  return found;
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function githubAnchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

interface ComposeService {
  readonly name: string;
  readonly body: string;
}

/** The services of a compose file: each `  name:` under `services:` with its indented block. */
function composeServices(text: string): ComposeService[] {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line === 'services:');
  expect(start, 'docker-compose.yml has a top-level services: key').toBeGreaterThanOrEqual(0);
  const services: Array<{ name: string; lines: string[] }> = [];
  for (const line of lines.slice(start + 1)) {
    if (/^\S/.test(line) && !line.startsWith('#')) break;
    const header = /^ {2}([A-Za-z0-9][\w.-]*):\s*$/.exec(line);
    if (header !== null) services.push({ name: header[1] as string, lines: [] });
    else services.at(-1)?.lines.push(line);
  }
  return services.map((service) => ({ name: service.name, body: service.lines.join('\n') }));
}

/** A list-valued key of a service: flow style `key: ["a", "b"]` or block style `- a` lines. */
function composeList(body: string, key: string): string[] {
  const flow = new RegExp(`^ {4}${key}:\\s*\\[(.*)\\]\\s*$`, 'm').exec(body);
  if (flow !== null) return [...(flow[1] ?? '').matchAll(/"([^"]*)"|([^,\s"][^,]*)/g)].map((item) => (item[1] ?? item[2] ?? '').trim());
  const block = new RegExp(`^ {4}${key}:\\s*\\n((?: {6}- .*\\n?)+)`, 'm').exec(body);
  if (block === null) return [];
  return (block[1] ?? '').split('\n').filter((line) => line.trim() !== '').map((line) => line.replace(/^ {6}- /, '').trim().replace(/^"(.*)"$/, '$1'));
}

function composeScalar(body: string, key: string): string | undefined {
  return new RegExp(`^ {4}${key}:\\s*(.+?)\\s*$`, 'm').exec(body)?.[1]?.replace(/^"(.*)"$/, '$1');
}

/** Compose's `${NAME:-default}` interpolation with nothing set: the default. */
function withComposeDefaults(value: string): string {
  return value.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');
}

// ---- the Prometheus exposition format ------------------------------------------------------

interface Exposition {
  /** Metric family name to type (`# TYPE name type`). */
  readonly families: ReadonlyMap<string, string>;
  /** Family to label name to every value seen on its samples. */
  readonly labelValues: ReadonlyMap<string, ReadonlyMap<string, ReadonlySet<string>>>;
}

const seriesSuffixes: Readonly<Record<string, readonly string[]>> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

function parseExposition(text: string): Exposition {
  const families = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/gm)) families.set(match[1] as string, match[2] as string);
  const labelValues = new Map<string, Map<string, Set<string>>>();
  for (const line of text.split('\n')) {
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+/.exec(line);
    if (sample === null || line.startsWith('#')) continue;
    const family = familyOf(families, sample[1] as string);
    if (family === undefined) continue;
    const labels = labelValues.get(family) ?? new Map<string, Set<string>>();
    labelValues.set(family, labels);
    for (const label of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      const values = labels.get(label[1] as string) ?? new Set<string>();
      values.add(label[2] as string);
      labels.set(label[1] as string, values);
    }
  }
  return { families, labelValues };
}

/** The family a series name belongs to: itself, or a histogram's/summary's _bucket, _sum, _count. */
function familyOf(families: ReadonlyMap<string, string>, series: string): string | undefined {
  for (const [family, type] of families) {
    const suffixes = seriesSuffixes[type] ?? [''];
    if (suffixes.some((suffix) => family + suffix === series)) return family;
  }
  return undefined;
}

// ---- PromQL: the metric names, matchers and grouping labels of an expression ---------------

const aggregators = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);
const promqlFunctions = new Set([
  'abs', 'absent', 'absent_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'day_of_month', 'day_of_week',
  'day_of_year', 'days_in_month', 'delta', 'deriv', 'exp', 'floor', 'histogram_quantile', 'holt_winters', 'hour', 'idelta',
  'increase', 'irate', 'label_join', 'label_replace', 'ln', 'log2', 'log10', 'minute', 'month', 'predict_linear', 'rate',
  'resets', 'round', 'scalar', 'sgn', 'sort', 'sort_desc', 'sqrt', 'time', 'timestamp', 'vector', 'year', 'avg_over_time',
  'min_over_time', 'max_over_time', 'sum_over_time', 'count_over_time', 'quantile_over_time', 'stddev_over_time',
  'stdvar_over_time', 'last_over_time', 'present_over_time',
]);
const groupingWords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const otherWords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);

interface Matcher {
  readonly label: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}
interface Selector {
  readonly metric: string;
  readonly matchers: readonly Matcher[];
}
interface QueryParts {
  readonly selectors: readonly Selector[];
  readonly groupingLabels: readonly string[];
}

/** A closing bracket's index, skipping quoted strings. */
function closingIndex(text: string, from: number, close: string): number {
  for (let index = from; index < text.length; index += 1) {
    const char = text[index];
    if (char === '"') {
      index += 1;
      while (index < text.length && text[index] !== '"') index += text[index] === '\\' ? 2 : 1;
    } else if (char === close) {
      return index;
    }
  }
  throw new Error(`unbalanced ${close} in ${text}`);
}

function parseMatchers(body: string): Matcher[] {
  const matchers: Matcher[] = [];
  const pattern = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)/gy;
  let consumed = 0;
  for (const match of body.matchAll(pattern)) {
    matchers.push({ label: match[1] as string, op: match[2] as Matcher['op'], value: match[3] as string });
    consumed = (match.index ?? 0) + match[0].length;
  }
  if (body.slice(consumed).trim() !== '') throw new Error(`cannot read the matchers {${body}}`);
  return matchers;
}

/**
 * Reads the metric names (identifiers followed by `{`, `[` or standing alone), their matchers and
 * the labels of by/without/on/ignoring/group_left/group_right clauses. Functions and aggregators
 * are known by name; an unknown identifier followed by `(` is an error, not a metric.
 */
function parsePromql(expr: string): QueryParts {
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  let index = 0;
  const skipSpace = () => {
    while (index < expr.length && /\s/.test(expr[index] as string)) index += 1;
  };
  while (index < expr.length) {
    const rest = expr.slice(index);
    const char = expr[index] as string;
    const identifier = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest)?.[0];
    if (identifier !== undefined) {
      index += identifier.length;
      skipSpace();
      if (groupingWords.has(identifier)) {
        if (expr[index] === '(') {
          const close = closingIndex(expr, index + 1, ')');
          groupingLabels.push(...expr.slice(index + 1, close).split(',').map((label) => label.trim()).filter((label) => label !== ''));
          index = close + 1;
        }
      } else if (identifier === 'offset') {
        index += /^-?[0-9a-z]+/.exec(expr.slice(index))?.[0].length ?? 0;
      } else if (aggregators.has(identifier) || promqlFunctions.has(identifier) || otherWords.has(identifier.toLowerCase())) {
        // Not a metric; its arguments are read as the loop goes on.
      } else if (expr[index] === '(') {
        throw new Error(`unknown PromQL function ${identifier} in ${expr}`);
      } else {
        let matchers: Matcher[] = [];
        if (expr[index] === '{') {
          const close = closingIndex(expr, index + 1, '}');
          matchers = parseMatchers(expr.slice(index + 1, close));
          index = close + 1;
        }
        selectors.push({ metric: identifier, matchers });
      }
    } else if (char === '{') {
      throw new Error(`a selector without a metric name in ${expr}`);
    } else if (char === '[') {
      index = closingIndex(expr, index + 1, ']') + 1;
    } else if (char === '"') {
      index = closingIndex(expr, index + 1, '"') + 1;
    } else if (/[0-9.]/.test(char)) {
      index += /^[0-9.]+(?:[eE][+-]?[0-9]+)?[smhdwy]?/.exec(rest)?.[0].length ?? 1;
    } else {
      index += 1;
    }
  }
  return { selectors, groupingLabels };
}

/** Labels Prometheus attaches to every scraped series, and the values our config gives them (null: any). */
type TargetLabels = ReadonlyMap<string, ReadonlySet<string> | null>;
/** Series Prometheus makes itself for each target. */
const prometheusSeries = new Set(['up']);

interface Reference {
  readonly exposition: Exposition;
  /** Label names each family is declared with (prom-client), whether or not a sample has them yet. */
  readonly declaredLabels: ReadonlyMap<string, ReadonlySet<string>>;
  readonly targetLabels: TargetLabels;
}

/** Every way a query strays from what the service exposes; empty when it does not. */
function queryProblems(source: string, expr: string, reference: Reference): string[] {
  const problems: string[] = [];
  const { exposition, declaredLabels, targetLabels } = reference;
  const parts = parsePromql(expr);
  const knownLabels = new Set<string>(targetLabels.keys());
  for (const selector of parts.selectors) {
    const family = familyOf(exposition.families, selector.metric);
    const own = new Set<string>();
    if (family === undefined && !prometheusSeries.has(selector.metric)) {
      problems.push(`${source}: ${selector.metric} is not exposed by the service`);
      continue;
    }
    if (family !== undefined) {
      for (const label of declaredLabels.get(family) ?? []) own.add(label);
      for (const label of exposition.labelValues.get(family)?.keys() ?? []) own.add(label);
      if (selector.metric.endsWith('_bucket')) own.add('le');
      if (exposition.families.get(family) === 'summary' && selector.metric === family) own.add('quantile');
    }
    for (const label of own) knownLabels.add(label);
    for (const matcher of selector.matchers) {
      const where = `${source}: ${selector.metric}{${matcher.label}${matcher.op}"${matcher.value}"}`;
      const isTargetLabel = targetLabels.has(matcher.label);
      if (!isTargetLabel && !own.has(matcher.label)) {
        problems.push(`${where}: ${matcher.label} is not a label of ${selector.metric}`);
        continue;
      }
      if (matcher.value.includes('$')) continue;
      const seen = isTargetLabel ? targetLabels.get(matcher.label) : family === undefined ? undefined : exposition.labelValues.get(family)?.get(matcher.label);
      if (seen === null) continue;
      let wanted: string[] = [];
      if (matcher.op === '=') wanted = [matcher.value];
      // A regex of literal alternatives ("waiting|delayed") names values; any other ("5..") does not.
      else if (matcher.op === '=~' && /^[A-Za-z0-9_/:-]+(\|[A-Za-z0-9_/:-]+)*$/.test(matcher.value)) wanted = matcher.value.split('|');
      for (const value of wanted) {
        if (seen === undefined || !seen.has(value)) {
          problems.push(`${where}: the service never emits ${matcher.label}="${value}" (seen: ${[...(seen ?? [])].sort().join(', ') || 'none'})`);
        }
      }
    }
  }
  for (const label of parts.groupingLabels) {
    if (!knownLabels.has(label)) problems.push(`${source}: grouping label ${label} is on none of the query's metrics`);
  }
  return problems;
}

// ---- the files --------------------------------------------------------------------------

const alertsText = read('deploy/prometheus/alerts.yml');
const alertNames = [...alertsText.matchAll(/^\s*- alert:\s*(\w+)\s*$/gm)].map((match) => match[1] as string);
const alertExpressions = yamlExpressions(alertsText);

interface DashboardPanel {
  readonly title?: string;
  readonly type?: string;
  readonly datasource?: { readonly type?: string; readonly uid?: string };
  readonly targets?: ReadonlyArray<{ readonly expr?: string; readonly datasource?: { readonly uid?: string } }>;
  readonly panels?: readonly DashboardPanel[];
}
interface Dashboard {
  readonly uid: string;
  readonly panels: readonly DashboardPanel[];
  readonly templating: { readonly list: ReadonlyArray<{ readonly name: string; readonly type: string; readonly query?: string; readonly current?: { readonly value?: string } }> };
}
const dashboard = JSON.parse(read('deploy/grafana/stockhold.json')) as Dashboard;

function allPanels(panels: readonly DashboardPanel[]): DashboardPanel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}
const dashboardQueries = allPanels(dashboard.panels).flatMap((panel) =>
  (panel.targets ?? []).map((target, index) => ({ source: `dashboard "${panel.title}" query ${index + 1}`, expr: target.expr ?? '' })),
);
/** Grafana's interval variables, as Prometheus would receive them. */
const withGrafanaIntervals = (expr: string) => expr.replace(/\$__(rate_interval|interval|range)/g, '1m');

function targetLabelsFromConfig(): TargetLabels {
  const jobs = [...read('deploy/prometheus/prometheus.yml').matchAll(/job_name:\s*(\S+)/g)].map((match) => match[1] as string);
  const processes = readdirSync(targetsDir).flatMap((layout) =>
    readdirSync(join(targetsDir, layout)).flatMap((file) => [...readFileSync(join(targetsDir, layout, file), 'utf8').matchAll(/^\s*process:\s*(\S+)\s*$/gm)].map((match) => match[1] as string)),
  );
  return new Map<string, ReadonlySet<string> | null>([
    ['job', new Set(jobs)],
    ['instance', null],
    ['process', new Set(processes)],
  ]);
}

// ---- tests ------------------------------------------------------------------------------

describe('promtool', () => {
  it('accepts the alert rules', () => {
    const output = expectPromtoolSuccess(['check', 'rules', 'deploy/prometheus/alerts.yml']);
    expect(output).toContain(`SUCCESS: ${alertNames.length} rules found`);
  });

  it('passes the rules unit tests', () => {
    expect(expectPromtoolSuccess(['test', 'rules', 'deploy/prometheus/alerts.test.yml'])).toContain('SUCCESS');
  });

  it('accepts the Prometheus config with every target layout, as the container sees it', () => {
    const layouts = readdirSync(targetsDir).filter((entry) => statSync(join(targetsDir, entry)).isDirectory());
    expect(layouts.sort()).toEqual(['single', 'split']);
    const scratch = mkdtempSync(join(tmpdir(), 'stockhold-prometheus-'));
    try {
      for (const layout of layouts) {
        // /etc/prometheus in the container: the config, the rules and the chosen targets.
        const etc = join(scratch, layout);
        mkdirSync(join(etc, 'targets'), { recursive: true });
        copyFileSync(join(prometheusDir, 'prometheus.yml'), join(etc, 'prometheus.yml'));
        copyFileSync(join(prometheusDir, 'alerts.yml'), join(etc, 'alerts.yml'));
        const files = readdirSync(join(targetsDir, layout));
        expect(files.length, layout).toBeGreaterThan(0);
        for (const file of files) copyFileSync(join(targetsDir, layout, file), join(etc, 'targets', file));
        const output = expectPromtoolSuccess(['check', 'config', 'prometheus.yml'], etc);
        expect(output, layout).not.toMatch(/WARNING/);
        expect(output, layout).toContain(`SUCCESS: ${alertNames.length} rules found`);
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('parses every dashboard query (each as a recording rule)', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'stockhold-dashboard-'));
    try {
      const rules = dashboardQueries.map((query, index) => `      - record: dashboard:query_${index}\n        expr: ${JSON.stringify(withGrafanaIntervals(query.expr))}`);
      writeFileSync(join(scratch, 'queries.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      expect(expectPromtoolSuccess(['check', 'rules', 'queries.yml'], scratch)).toContain(`SUCCESS: ${dashboardQueries.length} rules found`);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('the alert rules and their tests', () => {
  const testsText = read('deploy/prometheus/alerts.test.yml');

  it('reads one expression per alert', () => {
    expect(alertNames.length).toBeGreaterThanOrEqual(14);
    expect(alertExpressions).toHaveLength(alertNames.length);
    expect(new Set(alertNames).size).toBe(alertNames.length);
  });

  it('gives every alert a severity, a summary, a description and a runbook heading in docs/operations.md', () => {
    const anchors = new Set([...read('docs/operations.md').matchAll(/^#{1,6} (.+)$/gm)].map((match) => githubAnchor(match[1] as string)));
    const rules = alertsText.split(/^\s*- alert:/m).slice(1);
    expect(rules).toHaveLength(alertNames.length);
    for (const [index, rule] of rules.entries()) {
      const name = alertNames[index] as string;
      expect(rule, name).toMatch(/^\s+severity: (critical|warning)$/m);
      expect(rule, name).toMatch(/^\s+summary: \S/m);
      expect(rule, name).toMatch(/^\s+description: \S/m);
      const runbook = /^\s+runbook: docs\/operations\.md#(\S+)$/m.exec(rule)?.[1];
      expect(runbook, `${name} runbook`).toBe(name.toLowerCase());
      expect(anchors.has(runbook as string), `docs/operations.md has a heading for #${runbook}`).toBe(true);
    }
  });

  it('has a firing case with labels and annotations, and a silent case, for every alert', () => {
    for (const name of alertNames) {
      const firing = new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels:\\n(?:.*\\n)*?\\s+exp_annotations:`);
      const silent = new RegExp(`alertname: ${name}\\n\\s+exp_alerts: \\[\\]`);
      expect(testsText, `${name} fires somewhere`).toMatch(firing);
      expect(testsText, `${name} stays silent somewhere`).toMatch(silent);
    }
    const tested = new Set([...testsText.matchAll(/alertname: (\w+)/g)].map((match) => match[1]));
    expect([...tested].filter((name) => !alertNames.includes(name as string))).toEqual([]);
  });
});

describe('the PromQL name checker', () => {
  const exposition = parseExposition(
    [
      '# HELP stockhold_reservations_total Reservation requests by outcome.',
      '# TYPE stockhold_reservations_total counter',
      'stockhold_reservations_total{outcome="created"} 3',
      'stockhold_reservations_total{outcome="unavailable"} 0',
      '# TYPE stockhold_commit_lag_seconds histogram',
      'stockhold_commit_lag_seconds_bucket{le="0.5"} 1',
      'stockhold_commit_lag_seconds_bucket{le="+Inf"} 1',
      'stockhold_commit_lag_seconds_sum 0.1',
      'stockhold_commit_lag_seconds_count 1',
      '# TYPE stockhold_ready gauge',
      'stockhold_ready 1',
    ].join('\n'),
  );
  const reference: Reference = {
    exposition,
    declaredLabels: new Map([['stockhold_reservations_total', new Set(['outcome'])]]),
    targetLabels: new Map<string, ReadonlySet<string> | null>([['job', new Set(['stockhold'])], ['instance', null]]),
  };

  it('reads metric names, matchers and grouping labels, and nothing else, from an expression', () => {
    const parts = parsePromql(
      'histogram_quantile(0.99, sum by (le) (rate(stockhold_commit_lag_seconds_bucket{job="stockhold"}[$__rate_interval]))) > 1e3 ' +
        'and on (instance) (time() - max(stockhold_ready offset 5m) or vector(0)) == bool 0 unless up',
    );
    expect(parts.selectors.map((selector) => selector.metric)).toEqual(['stockhold_commit_lag_seconds_bucket', 'stockhold_ready', 'up']);
    expect(parts.selectors[0]?.matchers).toEqual([{ label: 'job', op: '=', value: 'stockhold' }]);
    expect(parts.groupingLabels).toEqual(['le', 'instance']);
  });

  it('accepts exposed names, labels and label values', () => {
    expect(queryProblems('ok', 'sum by (outcome) (rate(stockhold_reservations_total{outcome=~"created|unavailable", job="stockhold"}[5m]))', reference)).toEqual([]);
    expect(queryProblems('ok', 'histogram_quantile(0.5, sum by (le) (rate(stockhold_commit_lag_seconds_bucket[5m]))) and up{job="stockhold"}', reference)).toEqual([]);
  });

  it('rejects a misspelt metric name, a histogram without its suffix, an unknown label, value or function', () => {
    expect(queryProblems('q', 'sum(rate(stockhold_reservation_total[5m]))', reference)).toEqual(['q: stockhold_reservation_total is not exposed by the service']);
    expect(queryProblems('q', 'rate(stockhold_commit_lag_seconds[5m])', reference)).toEqual(['q: stockhold_commit_lag_seconds is not exposed by the service']);
    expect(queryProblems('q', 'stockhold_reservations_total{outcome="creatd"}', reference)[0]).toMatch(/never emits outcome="creatd"/);
    expect(queryProblems('q', 'stockhold_reservations_total{outcome=~"created|lost"}', reference)[0]).toMatch(/never emits outcome="lost"/);
    expect(queryProblems('q', 'stockhold_reservations_total{outcome=~"cre.*"}', reference)).toEqual([]);
    expect(queryProblems('q', 'stockhold_reservations_total{sku="A"}', reference)[0]).toMatch(/sku is not a label of stockhold_reservations_total/);
    expect(queryProblems('q', 'up{job="stockhol"}', reference)[0]).toMatch(/never emits job="stockhol"/);
    expect(queryProblems('q', 'sum by (sku) (stockhold_ready)', reference)).toEqual(['q: grouping label sku is on none of the query\'s metrics']);
    expect(() => parsePromql('rte(stockhold_ready[5m])')).toThrow(/unknown PromQL function rte/);
  });
});

describe('against a running Stockhold', () => {
  let harness: Harness;
  let reference: Reference;

  beforeAll(async () => {
    harness = await startHarness({ COMMIT_BATCH_WAIT_MS: '1' }, { ownDatabase: true });
    await harness.startWorker();
    const sku = await createSku(harness, 10, 'DEPLOY');
    const reserve = (body: unknown) => harness.call('POST', '/v1/reservations', { as: 'checkout', idempotencyKey: idempotencyKey(), body });
    const kept = await reserve({ lines: [{ sku, quantity: 2 }] });
    expect(kept.status).toBe(201);
    const released = await reserve({ lines: [{ sku, quantity: 1 }] });
    expect(released.status).toBe(201);
    expect((await reserve({ lines: [{ sku, quantity: 100 }] })).status).toBe(409);
    expect((await reserve({ lines: [{ sku: `${sku}-missing`, quantity: 1 }] })).status).toBe(404);
    const confirmed = await harness.call('POST', `/v1/reservations/${kept.body.id}/confirm`, { as: 'checkout', headers: { prefer: 'wait=10' } });
    expect(confirmed.body).toMatchObject({ status: 'committed' });
    expect((await harness.call('DELETE', `/v1/reservations/${released.body.id}`, { as: 'checkout' })).status).toBe(200);
    expect((await harness.call('POST', '/v1/reconcile?dryRun=true')).status).toBe(200);

    const response = await fetch(`${harness.baseUrl}/metrics`);
    expect(response.status).toBe(200);
    const exposition = parseExposition(await response.text());
    const declaredLabels = new Map<string, ReadonlySet<string>>(
      harness.stockhold.metrics.registry
        .getMetricsAsArray()
        .map((metric) => [metric.name, new Set((metric as unknown as { labelNames?: readonly string[] }).labelNames ?? [])] as const),
    );
    reference = { exposition, declaredLabels, targetLabels: targetLabelsFromConfig() };
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('exposes the families the rules depend on, with queue depths per queue and state', () => {
    const { families, labelValues } = reference.exposition;
    expect(families.get('stockhold_commit_lag_seconds')).toBe('histogram');
    expect(families.get('stockhold_reservations_total')).toBe('counter');
    expect(families.get('process_cpu_seconds_total')).toBe('counter');
    expect([...(labelValues.get('stockhold_queue_jobs')?.get('queue') ?? [])].sort()).toEqual(['commits', 'reconcile', 'webhooks']);
    expect([...(labelValues.get('stockhold_queue_jobs')?.get('state') ?? [])].sort()).toEqual(['active', 'delayed', 'failed', 'waiting']);
  });

  it('uses only exposed metric names, labels and label values in the alert rules', () => {
    expect(alertExpressions.flatMap((expr, index) => queryProblems(`alert ${alertNames[index]}`, expr, reference))).toEqual([]);
  });

  it('uses only exposed metric names, labels and label values in the dashboard', () => {
    expect(dashboardQueries.length).toBeGreaterThan(20);
    expect(dashboardQueries.flatMap((query) => queryProblems(query.source, withGrafanaIntervals(query.expr), reference))).toEqual([]);
  });

  it('shows every stockhold_ metric family somewhere on the dashboard', () => {
    const { families } = reference.exposition;
    const shown = new Set(dashboardQueries.flatMap((query) => parsePromql(withGrafanaIntervals(query.expr)).selectors.map((selector) => familyOf(families, selector.metric))));
    expect([...families.keys()].filter((family) => family.startsWith('stockhold_') && !shown.has(family))).toEqual([]);
  });
});

describe('the dashboard and Grafana provisioning', () => {
  it('takes its datasource from a variable that defaults to the provisioned Prometheus', () => {
    const provisionedUid = /^\s+uid:\s*(\S+)\s*$/m.exec(read('deploy/grafana/provisioning/datasources/prometheus.yml'))?.[1];
    expect(provisionedUid).toBe('stockhold-prometheus');
    const variable = dashboard.templating.list.find((entry) => entry.type === 'datasource');
    expect(variable).toMatchObject({ name: 'datasource', query: 'prometheus', current: { value: provisionedUid } });
    for (const panel of allPanels(dashboard.panels).filter((entry) => entry.type !== 'row')) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const target of panel.targets ?? []) expect(target.datasource?.uid, panel.title).toBe('${datasource}');
    }
  });

  it('points the datasource at the compose Prometheus and the dashboard provider at the mounted file', () => {
    const services = composeServices(read('docker-compose.yml'));
    const grafana = services.find((service) => service.name === 'grafana');
    expect(read('deploy/grafana/provisioning/datasources/prometheus.yml')).toMatch(/^\s+url: http:\/\/prometheus:9090$/m);
    const providerPath = /^\s+path:\s*(\S+)\s*$/m.exec(read('deploy/grafana/provisioning/dashboards/stockhold.yml'))?.[1];
    const mount = composeList(grafana?.body ?? '', 'volumes').find((volume) => volume.startsWith('./deploy/grafana/stockhold.json:'));
    expect(mount, 'the dashboard file is mounted').toBeDefined();
    expect(posix.dirname((mount as string).split(':')[1] as string)).toBe(providerPath);
  });
});

describe('docker-compose.yml', () => {
  const services = composeServices(read('docker-compose.yml'));
  const service = (name: string) => {
    const found = services.find((entry) => entry.name === name);
    expect(found, `service ${name}`).toBeDefined();
    return found as ComposeService;
  };

  it('keeps redis and postgres always on, and adds prometheus and grafana under the observability profile', () => {
    expect(services.map((entry) => entry.name)).toEqual(['redis', 'postgres', 'prometheus', 'grafana', ...[1, 2, 3, 4, 5, 6].map((index) => `redis-cluster-${index}`), 'redis-cluster-init']);
    for (const name of ['redis', 'postgres']) expect(composeList(service(name).body, 'profiles'), name).toEqual([]);
    expect(composeScalar(service('redis').body, 'image')).toBe('redis:7.2-alpine');
    expect(composeScalar(service('postgres').body, 'image')).toBe('postgres:15-alpine');
    for (const name of ['prometheus', 'grafana']) expect(composeList(service(name).body, 'profiles'), name).toEqual(['observability']);
  });

  it('has a cluster profile: six never-evicting cluster nodes on 127.0.0.1:7001-7006 joined by a one-shot create with a replica each', () => {
    const text = read('docker-compose.yml');
    // The shared node settings, indented as a service body for the readers above.
    const anchor = (/x-redis-cluster-node: &redis-cluster-node\n((?:  .*\n)+)/.exec(text)?.[1] ?? '').replace(/^/gm, '  ');
    expect(composeList(anchor, 'profiles')).toEqual(['cluster']);
    expect(composeScalar(anchor, 'image')).toBe('redis:7.2-alpine');
    expect(composeScalar(anchor, 'network_mode')).toBe('host');
    for (let index = 1; index <= 6; index += 1) {
      const node = service(`redis-cluster-${index}`);
      expect(node.body, node.name).toContain('<<: *redis-cluster-node');
      const command = composeList(node.body, 'command').join(' ');
      expect(command, node.name).toContain(`--port ${7000 + index} --bind 127.0.0.1 --cluster-enabled yes`);
      expect(command, node.name).toContain('--maxmemory-policy noeviction');
    }
    const init = service('redis-cluster-init');
    expect(composeList(init.body, 'profiles')).toEqual(['cluster']);
    const create = composeList(init.body, 'command').join(' ');
    expect(create).toContain(`--cluster create ${[1, 2, 3, 4, 5, 6].map((index) => `127.0.0.1:${7000 + index}`).join(' ')} --cluster-replicas 1 --cluster-yes`);
  });

  it('pins the images and publishes ports on loopback only', () => {
    expect(composeScalar(service('prometheus').body, 'image')).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    expect(composeScalar(service('grafana').body, 'image')).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    for (const name of ['prometheus', 'grafana']) {
      const ports = composeList(service(name).body, 'ports');
      expect(ports.length, name).toBeGreaterThan(0);
      for (const port of ports) expect(port, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    }
    // Grafana must not take the port Stockhold's API listens on.
    expect(composeList(service('grafana').body, 'ports')).not.toContain('127.0.0.1:3000:3000');
  });

  it('mounts files that exist, where the Prometheus config expects them, and maps host.docker.internal', () => {
    for (const name of ['prometheus', 'grafana']) {
      const volumes = composeList(service(name).body, 'volumes');
      expect(volumes.length, name).toBeGreaterThan(0);
      for (const volume of volumes) {
        const [source, target, mode] = withComposeDefaults(volume).split(':');
        expect(source, volume).toMatch(/^\.\/deploy\//);
        expect(existsSync(join(root, source as string)), `${volume}: ${source} exists`).toBe(true);
        expect(target, volume).toMatch(/^\//);
        expect(mode, volume).toBe('ro');
      }
    }
    const prometheus = service('prometheus');
    expect(composeList(prometheus.body, 'extra_hosts')).toContain('host.docker.internal:host-gateway');
    const sourceOf = new Map(composeList(prometheus.body, 'volumes').map((volume) => withComposeDefaults(volume).split(':')).map(([source, target]) => [target, source]));
    expect(sourceOf.get('/etc/prometheus/prometheus.yml')).toBe('./deploy/prometheus/prometheus.yml');
    expect(sourceOf.get('/etc/prometheus/alerts.yml')).toBe('./deploy/prometheus/alerts.yml');
    // The layout defaults to single; STOCKHOLD_LAYOUT=split selects the other directory.
    expect(sourceOf.get('/etc/prometheus/targets')).toBe('./deploy/prometheus/targets/single');
    expect(composeList(prometheus.body, 'command')).toContain('--config.file=/etc/prometheus/prometheus.yml');
    const config = read('deploy/prometheus/prometheus.yml');
    expect(config).toMatch(/^rule_files:\n\s+- alerts\.yml$/m);
    expect(config).toMatch(/files: \["targets\/\*\.yml"\]/);
    for (const layout of readdirSync(targetsDir)) {
      for (const file of readdirSync(join(targetsDir, layout))) expect(readFileSync(join(targetsDir, layout, file), 'utf8'), `${layout}/${file}`).toMatch(/host\.docker\.internal:3000/);
    }
  });
});
