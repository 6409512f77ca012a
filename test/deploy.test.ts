/**
 * deploy/ against the code: every file there is parsed (YAML with `yaml`, JSON with JSON.parse,
 * the Dockerfile, its ignore file and the README as text; a file of an unknown kind fails), every
 * `ddpm` command line in the Dockerfile, compose file, Kubernetes manifests and README uses flags
 * (and choices) the named command accepts per its --help, ports agree with the CLI defaults and
 * with each other, and every metric in the dashboard, the Prometheus configs and their PromQL is
 * one the coordinator's or worker's registry serves (names from src/metrics/names.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { execFileSync } from 'child_process';
import YAML from 'yaml';
import { METRIC } from '../src/metrics/names';
import { TrainingMetrics } from '../src/metrics/trainingMetrics';
import { WorkerMetrics } from '../src/metrics/workerMetrics';

// Parsed YAML and JSON documents are walked structurally; their shapes are asserted as we go.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const ROOT = path.resolve(__dirname, '..');
const DEPLOY = path.join(ROOT, 'deploy');
const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

// ---------------------------------------------------------------------------------------------
// Files

type Kind =
  | 'dockerfile' | 'dockerignore' | 'readme' | 'compose' | 'prometheus-config' | 'prometheus-rules'
  | 'grafana-datasources' | 'grafana-dashboard-provider' | 'grafana-dashboard' | 'kubernetes';

function walk(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? walk(full, base) : [path.relative(base, full).split(path.sep).join('/')];
  });
}

function classify(rel: string): Kind | undefined {
  if (rel === 'Dockerfile') return 'dockerfile';
  if (rel === 'Dockerfile.dockerignore') return 'dockerignore';
  if (rel === 'README.md') return 'readme';
  if (rel === 'docker-compose.yml') return 'compose';
  if (rel === 'prometheus/prometheus.yml') return 'prometheus-config';
  if (/^prometheus\/[\w.-]*rules\.ya?ml$/.test(rel)) return 'prometheus-rules';
  if (/^grafana\/provisioning\/datasources\/[\w.-]+\.ya?ml$/.test(rel)) return 'grafana-datasources';
  if (/^grafana\/provisioning\/dashboards\/[\w.-]+\.ya?ml$/.test(rel)) return 'grafana-dashboard-provider';
  if (/^grafana\/dashboards\/[\w.-]+\.json$/.test(rel)) return 'grafana-dashboard';
  if (/^kubernetes\/[\w.-]+\.ya?ml$/.test(rel)) return 'kubernetes';
  return undefined;
}

const FILES = walk(DEPLOY).sort();
const byKind = (k: Kind) => FILES.filter((f) => classify(f) === k);
const read = (rel: string) => fs.readFileSync(path.join(DEPLOY, rel), 'utf8');

function parseYamlAll(rel: string): Doc[] {
  const docs = YAML.parseAllDocuments(read(rel), { merge: true });
  for (const d of docs) {
    const errors = 'errors' in d ? d.errors : [];
    if (errors.length > 0) throw new Error(`${rel}: ${errors.map((e) => e.message).join('; ')}`);
  }
  return docs.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}
function parseYaml(rel: string): Doc {
  const docs = parseYamlAll(rel);
  if (docs.length !== 1) throw new Error(`${rel}: expected one YAML document, found ${docs.length}`);
  return docs[0];
}

// ---------------------------------------------------------------------------------------------
// The CLI: flags, types, choices and defaults from `ddpm COMMAND --help`

interface CliOption { name: string; type?: string; default?: string; choices?: string[]; required: boolean }

function newestMtime(dir: string, ext: string): number {
  return walk(dir).filter((f) => f.endsWith(ext)).reduce((m, f) => Math.max(m, fs.statSync(path.join(dir, f)).mtimeMs), 0);
}

/** dist/ must reflect src/cli (the flags) and src/metrics/cliOptions.ts (the metrics flags) before --help is asked. */
function ensureBuilt(): void {
  const main = path.join(ROOT, 'dist', 'cli', 'main.js');
  const built = fs.existsSync(main) ? Math.min(fs.statSync(main).mtimeMs, newestMtime(path.join(ROOT, 'dist', 'cli'), '.js')) : 0;
  const sources = Math.max(newestMtime(path.join(ROOT, 'src', 'cli'), '.ts'), fs.statSync(path.join(ROOT, 'src', 'metrics', 'cliOptions.ts')).mtimeMs);
  if (built >= sources) return;
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe' });
}

const helpCache = new Map<string, Map<string, CliOption>>();

/** The options of `ddpm COMMAND`, parsed from its --help (yargs wraps at 110 columns when piped). */
function cliOptions(command: string): Map<string, CliOption> {
  const cached = helpCache.get(command);
  if (cached) return cached;
  const out = execFileSync(process.execPath, [BIN, command, '--help'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  const lines = out.split('\n');
  const start = lines.findIndex((l) => l.trim() === 'Options:');
  if (start < 0) throw new Error(`ddpm ${command} --help: no "Options:" section:\n${out}`);
  const blocks: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^\s{2}(-\w, )?--[a-z0-9-]+/.test(line)) blocks.push(line);
    else if (line.trim() !== '' && blocks.length > 0) blocks[blocks.length - 1] += ` ${line.trim()}`;
  }
  const options = new Map<string, CliOption>();
  for (const block of blocks) {
    const name = /--([a-z0-9-]+)/.exec(block)![1];
    const type = /\[(string|number|boolean|array|count)\]/.exec(block)?.[1];
    const def = /\[default: ("[^"]*"|[^\]]*)\]/.exec(block)?.[1];
    const choices = /\[choices: ([^\]]*)\]/.exec(block)?.[1];
    options.set(name, {
      name,
      type,
      default: def === undefined ? undefined : def.replace(/^"(.*)"$/, '$1'),
      choices: choices === undefined ? undefined : [...choices.matchAll(/"([^"]*)"|([^,\s]+)/g)].map((m) => m[1] ?? m[2]),
      required: block.includes('[required]'),
    });
  }
  if (options.size < 3) throw new Error(`ddpm ${command} --help: parsed only ${[...options.keys()].join(', ')}`);
  helpCache.set(command, options);
  return options;
}

function defaultOf(command: string, flag: string): string {
  const d = cliOptions(command).get(flag)?.default;
  if (d === undefined) throw new Error(`ddpm ${command} --${flag} has no default in --help`);
  return d;
}

/** host and port of a ZeroMQ tcp:// endpoint. */
function endpoint(address: string): { host: string; port: number } {
  const m = /^tcp:\/\/([^:/]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`not a tcp://HOST:PORT address: ${address}`);
  return { host: m[1], port: Number(m[2]) };
}

interface Invocation { command: string; flags: Map<string, string | true>; where: string }

/**
 * Checks one `ddpm` argument vector (after `node bin/ddpm.js`): the command exists, every flag is
 * one it accepts, values are present, numeric where the flag is a number and among its choices,
 * required flags are given. `$(VAR)` / `${VAR}` values (expanded by Kubernetes or a shell) pass.
 */
function checkDdpmArgs(args: unknown, where: string): Invocation {
  expect(Array.isArray(args)).toBe(true);
  const argv = (args as unknown[]).map((a) => {
    if (typeof a !== 'string' && typeof a !== 'number') throw new Error(`${where}: argument ${JSON.stringify(a)} is not a string`);
    return String(a);
  });
  const [command, ...rest] = argv;
  if (!['coordinator', 'worker', 'train', 'sample', 'inspect', 'schedule', 'model', 'keygen'].includes(command)) {
    throw new Error(`${where}: "${command}" is not a ddpm command`);
  }
  const options = cliOptions(command);
  const flags = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const token = rest[i];
    if (!token.startsWith('--')) throw new Error(`${where}: ddpm ${command} takes no positional argument, got "${token}"`);
    const eq = token.indexOf('=');
    let name = eq < 0 ? token.slice(2) : token.slice(2, eq);
    let value: string | true | undefined = eq < 0 ? undefined : token.slice(eq + 1);
    let option = options.get(name);
    if (!option && name.startsWith('no-') && options.get(name.slice(3))?.type === 'boolean') {
      option = options.get(name.slice(3));
      name = name.slice(3);
      value = 'false';
    }
    if (!option) throw new Error(`${where}: ddpm ${command} has no flag --${name} (see ddpm ${command} --help)`);
    if (option.type === 'boolean') {
      value ??= true;
    } else if (value === undefined) {
      value = rest[++i];
      if (value === undefined || value.startsWith('--')) throw new Error(`${where}: ddpm ${command} --${name} needs a value`);
    }
    const expanded = typeof value === 'string' && /\$[({]/.test(value);
    if (!expanded && typeof value === 'string') {
      if (option.type === 'number' && !Number.isFinite(Number(value))) throw new Error(`${where}: --${name} ${value} is not a number`);
      if (option.choices && !option.choices.includes(value)) {
        throw new Error(`${where}: --${name} ${value} is not one of ${option.choices.join(', ')}`);
      }
    }
    if (flags.has(name)) throw new Error(`${where}: --${name} given twice`);
    flags.set(name, value);
  }
  for (const option of options.values()) {
    if (option.required && !flags.has(option.name)) throw new Error(`${where}: ddpm ${command} needs --${option.name}`);
  }
  return { command, flags, where };
}

/** A flag's value as given, else its --help default. */
function flagValue(inv: Invocation, flag: string): string | undefined {
  const v = inv.flags.get(flag);
  if (v === true) return 'true';
  return v ?? cliOptions(inv.command).get(flag)?.default;
}
const metricsPortOf = (inv: Invocation) => Number(flagValue(inv, 'metrics-port'));

// ---------------------------------------------------------------------------------------------
// Metrics: what the registries serve

interface Series { metric: string; labels: Set<string> }

const catalogue = (() => {
  const coordinator = new TrainingMetrics({ workers: () => 0 });
  const worker = new WorkerMetrics(() => 0);
  return { coordinator: coordinator.registry, worker: worker.registry };
})();

/** Series name -> its metric and label names; histograms as _bucket (with le), _sum and _count. */
async function seriesNames(): Promise<Map<string, Series>> {
  const series = new Map<string, Series>();
  for (const registry of [catalogue.coordinator, catalogue.worker]) {
    for (const m of await registry.getMetricsAsJSON()) {
      const single = registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] };
      const labels = new Set(single.labelNames ?? []);
      const type = String(m.type);
      const add = (name: string, extra: string[] = []) => {
        const prev = series.get(name);
        series.set(name, { metric: m.name, labels: new Set([...(prev?.labels ?? []), ...labels, ...extra]) });
      };
      if (type === 'histogram') {
        add(`${m.name}_bucket`, ['le']);
        add(`${m.name}_sum`);
        add(`${m.name}_count`);
      } else if (type === 'summary') {
        add(m.name, ['quantile']);
        add(`${m.name}_sum`);
        add(`${m.name}_count`);
      } else {
        add(m.name);
      }
    }
  }
  return series;
}

/** Labels Prometheus adds at scrape time, in deploy/prometheus/prometheus.yml and the k8s config. */
const TARGET_LABELS = ['job', 'instance', 'pod', 'namespace', '__name__'];

const PROMQL_FUNCTIONS = new Set([
  'abs', 'absent', 'absent_over_time', 'avg_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min',
  'count_over_time', 'day_of_month', 'day_of_week', 'days_in_month', 'delta', 'deriv', 'exp', 'floor',
  'histogram_quantile', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace',
  'last_over_time', 'ln', 'log10', 'log2', 'max_over_time', 'min_over_time', 'minute', 'month', 'predict_linear',
  'present_over_time', 'quantile_over_time', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort', 'sort_desc',
  'sqrt', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'time', 'timestamp', 'vector', 'year',
  // aggregation operators
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile',
]);
const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'group_left', 'group_right', 'inf', 'nan']);

interface PromqlRefs { metrics: string[]; grouping: string[]; matchers: { metric?: string; label: string; value: string }[] }

/** The metric names, grouping labels and label matchers of a PromQL expression. */
function promqlRefs(expr: string): PromqlRefs {
  const refs: PromqlRefs = { metrics: [], grouping: [], matchers: [] };
  let s = expr
    .replace(/\$\{[^}]*\}|\$\w+/g, 'X') // Grafana variables ($__rate_interval), only inside ranges here
    .replace(/\[[^\]]*\]/g, ' '); // range and subquery selectors
  s = s.replace(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g, (_m, metric: string | undefined, body: string) => {
    for (const m of body.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/g)) {
      refs.matchers.push({ metric, label: m[1], value: m[3].slice(1, -1) });
    }
    return ` ${metric ?? ''} `;
  });
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, _kw, labels: string) => {
    refs.grouping.push(...labels.split(',').map((l) => l.trim()).filter((l) => l !== ''));
    return ' ';
  });
  s = s.replace(/(?<![\w:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w:])/g, ' ');
  for (const m of s.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const word = m[0];
    const next = s.slice(m.index! + word.length).trimStart()[0];
    if (next === '(') {
      if (!PROMQL_FUNCTIONS.has(word)) throw new Error(`PromQL "${expr}": unknown function ${word}()`);
    } else if (!PROMQL_KEYWORDS.has(word.toLowerCase())) {
      refs.metrics.push(word);
    }
  }
  return refs;
}

/**
 * Fails unless every metric of `expr` is a served ddpm_ series (or one of Node's process metrics
 * on the same registries), every label matcher and grouping label exists on them, and every
 * `job` matcher names a scrape job. Returns the metrics.
 */
function checkPromql(expr: string, series: Map<string, Series>, jobs: Set<string>, where: string): PromqlRefs {
  let refs: PromqlRefs;
  try {
    refs = promqlRefs(expr);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  if (refs.metrics.length === 0) throw new Error(`${where}: "${expr}" references no metric`);
  const labels = new Set(TARGET_LABELS);
  for (const metric of refs.metrics) {
    if (!metric.startsWith('ddpm_')) throw new Error(`${where}: "${expr}": ${metric} is not a ddpm_ metric`);
    const s = series.get(metric);
    if (!s) throw new Error(`${where}: "${expr}": no metric ${metric} (src/metrics/names.ts; histograms need _bucket, _sum or _count)`);
    for (const l of s.labels) labels.add(l);
  }
  for (const m of refs.matchers) {
    const own = m.metric ? series.get(m.metric)?.labels : undefined;
    if (m.metric && !TARGET_LABELS.includes(m.label) && !own?.has(m.label)) throw new Error(`${where}: "${expr}": ${m.metric} has no label ${m.label}`);
    if (m.label === 'job' && !jobs.has(m.value)) throw new Error(`${where}: "${expr}": job "${m.value}" is not scraped (jobs: ${[...jobs].join(', ')})`);
  }
  for (const l of refs.grouping) {
    if (!labels.has(l)) throw new Error(`${where}: "${expr}": grouping label ${l} is on none of its metrics`);
  }
  return refs;
}

/** Every ddpm_ word in some text must be a metric or one of its series. */
function checkDdpmWords(text: string, series: Map<string, Series>, where: string): void {
  const known = new Set([...series.keys(), ...[...series.values()].map((s) => s.metric)]);
  for (const m of text.matchAll(/\bddpm_[a-z0-9_]+/g)) {
    if (!known.has(m[0])) throw new Error(`${where}: ${m[0]} is not a metric (src/metrics/names.ts)`);
  }
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

interface Instruction { op: string; args: string; line: number }
interface Stage { name: string; from: string; instructions: Instruction[] }

function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*(#|$)/.test(line)) continue;
    const start = i;
    let full = line;
    while (/\\\s*$/.test(full) && i + 1 < lines.length) {
      i++;
      if (/^\s*#/.test(lines[i])) continue; // a comment inside a continued instruction
      full = `${full.replace(/\\\s*$/, ' ')}${lines[i].trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(full);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot parse "${line}"`);
    out.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: start + 1 });
  }
  return out;
}

function dockerStages(text: string): { stages: Map<string, Stage>; args: Map<string, string> } {
  const args = new Map<string, string>();
  const stages = new Map<string, Stage>();
  let current: Stage | undefined;
  for (const ins of dockerInstructions(text)) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: FROM ${ins.args}`);
      const from = m[1].replace(/\$\{(\w+)\}|\$(\w+)/g, (_x, a: string, b: string) => {
        const v = args.get(a ?? b);
        if (v === undefined) throw new Error(`Dockerfile line ${ins.line}: ARG ${a ?? b} has no default`);
        return v;
      });
      current = { name: m[2] ?? `#${stages.size}`, from, instructions: [] };
      stages.set(current.name, current);
    } else if (!current) {
      if (ins.op !== 'ARG') throw new Error(`Dockerfile line ${ins.line}: ${ins.op} before FROM`);
      const m = /^(\w+)=(\S+)$/.exec(ins.args);
      if (m) args.set(m[1], m[2]);
    } else {
      current.instructions.push(ins);
    }
  }
  return { stages, args };
}

/** The external image a stage is built on, following FROM <stage> chains. */
function baseImage(stages: Map<string, Stage>, name: string): string {
  let stage = stages.get(name);
  const seen = new Set<string>();
  while (stage && stages.has(stage.from) && !seen.has(stage.from)) {
    seen.add(stage.from);
    stage = stages.get(stage.from);
  }
  if (!stage) throw new Error(`no Dockerfile stage ${name}`);
  return stage.from;
}

/** The stages a stage depends on: its FROM chain and COPY --from sources, transitively. */
function stageDeps(stages: Map<string, Stage>, name: string, acc = new Set<string>()): Set<string> {
  const stage = stages.get(name);
  if (!stage || acc.has(name)) return acc;
  acc.add(name);
  if (stages.has(stage.from)) stageDeps(stages, stage.from, acc);
  for (const ins of stage.instructions) {
    const m = /--from=(\S+)/.exec(ins.args);
    if (ins.op === 'COPY' && m && stages.has(m[1])) stageDeps(stages, m[1], acc);
  }
  return acc;
}

function execForm(ins: Instruction | undefined, where: string): string[] {
  if (!ins) throw new Error(`${where}: missing`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(ins.args);
  } catch {
    throw new Error(`${where}: ${ins.op} must be in exec form (a JSON array) so signals reach node, got ${ins.args}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`${where}: ${ins.op} ${ins.args} is not an array of strings`);
  return parsed;
}

/** The effective ENTRYPOINT / CMD of a stage (inherited through FROM <stage>). */
function effective(stages: Map<string, Stage>, name: string, op: 'ENTRYPOINT' | 'CMD'): Instruction | undefined {
  for (let stage = stages.get(name); stage; stage = stages.get(stage.from)) {
    const found = [...stage.instructions].reverse().find((i) => i.op === op);
    if (found) return found;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// .dockerignore semantics (Docker's: last matching pattern wins; a pattern matching a parent
// directory matches everything below it)

function ignoreMatcher(text: string): (rel: string) => boolean {
  const patterns = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const negate = l.startsWith('!');
    const p = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
    const re = p.split(/(\*\*\/?|\*|\?)/).map((part) => {
      if (part === '**/' ) return '(?:.*/)?';
      if (part === '**') return '.*';
      if (part === '*') return '[^/]*';
      if (part === '?') return '[^/]';
      return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }).join('');
    return { negate, re: new RegExp(`^${re}$`) };
  });
  return (rel: string) => {
    const parts = rel.split('/');
    const prefixes = parts.map((_p, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const { negate, re } of patterns) {
      if (prefixes.some((p) => re.test(p))) excluded = !negate;
    }
    return excluded;
  };
}

// ---------------------------------------------------------------------------------------------
// Loaded once

let series: Map<string, Series>;
let compose: Doc;
let promConfig: Doc;
let k8s: { file: string; doc: Doc }[];
let k8sPromConfig: Doc;
let jobs: Set<string>;

beforeAll(async () => {
  ensureBuilt();
  series = await seriesNames();
  compose = parseYaml('docker-compose.yml');
  promConfig = parseYaml('prometheus/prometheus.yml');
  k8s = byKind('kubernetes').flatMap((file) => parseYamlAll(file).map((doc) => ({ file, doc })));
  const cm = k8s.find(({ doc }) => doc.kind === 'ConfigMap' && typeof doc.data?.['prometheus.yml'] === 'string');
  if (!cm) throw new Error('deploy/kubernetes: no ConfigMap with prometheus.yml');
  k8sPromConfig = YAML.parse(cm.doc.data['prometheus.yml']);
  jobs = new Set([...promConfig.scrape_configs, ...k8sPromConfig.scrape_configs].map((j: Doc) => j.job_name));
});

describe('deploy/ files', () => {
  test('every file is of a kind this test checks, and parses', () => {
    const unknown = FILES.filter((f) => classify(f) === undefined);
    if (unknown.includes('.dockerignore')) {
      throw new Error('deploy/.dockerignore is not read by `docker build -f deploy/Dockerfile .`; Docker reads deploy/Dockerfile.dockerignore');
    }
    expect(unknown).toEqual([]);
    for (const f of FILES) {
      const kind = classify(f)!;
      if (kind === 'grafana-dashboard') expect(() => JSON.parse(read(f))).not.toThrow();
      else if (['dockerfile', 'dockerignore', 'readme'].includes(kind)) expect(read(f).trim().length).toBeGreaterThan(0);
      else expect(parseYamlAll(f).length).toBeGreaterThan(0);
    }
    for (const k of ['dockerfile', 'dockerignore', 'readme', 'compose', 'prometheus-config', 'prometheus-rules',
      'grafana-datasources', 'grafana-dashboard-provider', 'grafana-dashboard', 'kubernetes'] as Kind[]) {
      expect(`${k}: ${byKind(k).length}`).not.toBe(`${k}: 0`);
    }
  });

  test('the metric names in src/metrics/names.ts are the ddpm_ metrics the registries serve', async () => {
    const served = new Set<string>();
    for (const registry of [catalogue.coordinator, catalogue.worker]) {
      for (const m of await registry.getMetricsAsJSON()) if (m.name.startsWith('ddpm_')) served.add(m.name);
    }
    expect([...served].sort()).toEqual([...new Set(Object.values(METRIC))].sort());
  });

  test('every ddpm_ word in deploy/ is a metric', () => {
    for (const f of FILES) checkDdpmWords(read(f), series, `deploy/${f}`);
  });
});

describe('Dockerfile', () => {
  const text = () => read('Dockerfile');

  test('cpu and gpu targets on the right bases, entrypoint node bin/ddpm.js, commands the CLI accepts', () => {
    const { stages } = dockerStages(text());
    expect([...stages.keys()]).toEqual(expect.arrayContaining(['cpu', 'gpu']));
    expect(baseImage(stages, 'cpu')).toBe('node:20-bookworm-slim');
    expect(Number(/^node:(\d+)/.exec(baseImage(stages, 'cpu'))![1])).toBeGreaterThanOrEqual(Number(/\d+/.exec(PKG.engines.node)![0]));
    // tfjs-node-gpu 4.x links libtensorflow 2.x against CUDA 11 and cuDNN 8.
    expect(baseImage(stages, 'gpu')).toMatch(/^nvidia\/cuda:11\.8\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/);
    for (const target of ['cpu', 'gpu']) {
      expect(execForm(effective(stages, target, 'ENTRYPOINT'), `${target} ENTRYPOINT`)).toEqual(['node', 'bin/ddpm.js']);
      checkDdpmArgs(execForm(effective(stages, target, 'CMD'), `${target} CMD`), `Dockerfile ${target} CMD`);
    }
    const gpuCmd = checkDdpmArgs(execForm(effective(stages, 'gpu', 'CMD'), 'gpu CMD'), 'Dockerfile gpu CMD');
    expect(gpuCmd.command).toBe('worker');
    expect(gpuCmd.flags.get('backend')).toBe('tensorflow');
    // The GPU image has Node 20 from the node stage, no download at run time.
    const gpu = stages.get('gpu')!;
    const nodeCopy = gpu.instructions.find((i) => i.op === 'COPY' && /\/usr\/local\/bin\/node\b/.test(i.args));
    expect(nodeCopy?.args).toMatch(/--from=(\S+)/);
    expect(baseImage(stages, /--from=(\S+)/.exec(nodeCopy!.args)![1])).toMatch(/^node:20[-.]/);
  });

  test('builds with npm ci and npm run build; the gpu image installs the tfjs-node-gpu version package.json pins', () => {
    const { stages } = dockerStages(text());
    const runs = (name: string) => [...stageDeps(stages, name)].flatMap((s) => stages.get(s)!.instructions.filter((i) => i.op === 'RUN').map((i) => i.args));
    for (const target of ['cpu', 'gpu']) {
      expect(runs(target).some((r) => /\bnpm ci\b/.test(r))).toBe(true);
      expect(runs(target).some((r) => /\bnpm run build\b/.test(r))).toBe(true);
    }
    const pinned = PKG.optionalDependencies['@tensorflow/tfjs-node-gpu'];
    expect(pinned).toMatch(/^4\./);
    const install = runs('gpu').find((r) => /\bnpm install\b.*@tensorflow\/tfjs-node-gpu@/.test(r));
    expect(install).toBeDefined();
    expect(/@tensorflow\/tfjs-node-gpu@(\S+)/.exec(install!)![1]).toBe(pinned);
    expect(runs('cpu').some((r) => /tfjs-node-gpu@/.test(r))).toBe(false);
  });

  test('EXPOSE matches the coordinator defaults; COPY sources exist and pass the ignore file', () => {
    const { stages } = dockerStages(text());
    const bind = endpoint(defaultOf('coordinator', 'bind')).port;
    const metrics = Number(defaultOf('coordinator', 'metrics-port'));
    const exposed = stages.get('cpu')!.instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => Number(p.replace(/\/tcp$/, '')));
    expect(exposed.sort()).toEqual([bind, metrics].sort());
    const ignored = ignoreMatcher(read('Dockerfile.dockerignore'));
    const generated = ['src/protocol/generated', 'src/backend/generated'];
    let checked = 0;
    for (const stage of stages.values()) {
      for (const ins of stage.instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD')) {
        const parts = ins.args.split(/\s+/);
        const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
        const paths = parts.filter((p) => !p.startsWith('--'));
        const sources = paths.slice(0, -1);
        if (from !== undefined) {
          // another stage, or an image (then a ref with ':' or '/')
          if (!stages.has(from) && !/[:/]/.test(from)) throw new Error(`Dockerfile line ${ins.line}: no stage ${from}`);
          continue;
        }
        for (const src of sources) {
          const abs = path.join(ROOT, src);
          if (!fs.existsSync(abs)) throw new Error(`Dockerfile line ${ins.line}: COPY source ${src} does not exist`);
          const files = fs.statSync(abs).isDirectory() ? walk(abs).map((f) => path.posix.join(src.replace(/\/$/, ''), f)) : [src];
          for (const f of files) {
            if (generated.some((g) => f.startsWith(`${g}/`))) continue;
            if (ignored(f)) throw new Error(`Dockerfile line ${ins.line}: ${f} is excluded by deploy/Dockerfile.dockerignore`);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  test('Dockerfile.dockerignore keeps host build outputs out of the context', () => {
    const ignored = ignoreMatcher(read('Dockerfile.dockerignore'));
    for (const p of ['node_modules/yaml/package.json', 'dist/cli/main.js', 'runs/demo/latest', '.git/HEAD',
      'src/protocol/generated/ddpm.js', 'src/backend/generated/registerGradients.js', 'test/deploy.test.ts']) {
      expect(`${p}: ${ignored(p)}`).toBe(`${p}: true`);
    }
    for (const p of ['package.json', 'package-lock.json', 'src/cli/main.ts', 'bin/ddpm.js', 'proto/ddpm.proto', 'scripts/gen-proto.js']) {
      expect(`${p}: ${ignored(p)}`).toBe(`${p}: false`);
    }
  });
});

describe('docker-compose.yml', () => {
  const services = () => compose.services as Record<string, Doc>;
  const ddpmServices = () => Object.entries(services()).filter(([, s]) => s.build?.dockerfile === 'deploy/Dockerfile');
  const invocation = (name: string) => checkDdpmArgs(services()[name].command, `docker-compose.yml ${name}`);

  test('ddpm services build deploy/Dockerfile targets from the repository root; their commands are valid', () => {
    const { stages } = dockerStages(read('Dockerfile'));
    expect(ddpmServices().length).toBeGreaterThanOrEqual(3);
    for (const [name, s] of ddpmServices()) {
      expect(path.resolve(DEPLOY, s.build.context)).toBe(ROOT);
      expect(stages.has(s.build.target)).toBe(true);
      expect(s.image).toBe(`ddpm-cluster:${s.build.target}`);
      invocation(name);
    }
  });

  test('a coordinator on the default ports with --resume and checkpoints on a named volume', () => {
    const coordinators = ddpmServices().filter(([n]) => invocation(n).command === 'coordinator');
    expect(coordinators.length).toBe(1);
    const [name, s] = coordinators[0];
    const inv = invocation(name);
    const bind = endpoint(flagValue(inv, 'bind')!);
    expect(bind.port).toBe(endpoint(defaultOf('coordinator', 'bind')).port);
    expect(metricsPortOf(inv)).toBe(Number(defaultOf('coordinator', 'metrics-port')));
    const published = (s.ports as string[]).map((p) => Number(String(p).split(':').pop()));
    expect(published).toEqual(expect.arrayContaining([bind.port, metricsPortOf(inv)]));
    expect(inv.flags.get('resume')).toBe(true);
    const dir = flagValue(inv, 'checkpoint-dir')!;
    const mount = (s.volumes as string[]).map((v) => v.split(':')).find(([, target]) => dir === target || dir.startsWith(`${target}/`));
    expect(mount).toBeDefined();
    expect(Object.keys(compose.volumes)).toContain(mount![0]);
    const hc = JSON.stringify(s.healthcheck?.test ?? '');
    expect(hc).toContain(`:${metricsPortOf(inv)}/healthz`);
  });

  test('two CPU workers and a GPU worker profile, all connecting to the coordinator', () => {
    const coordinator = ddpmServices().find(([n]) => invocation(n).command === 'coordinator')![0];
    const port = endpoint(flagValue(invocation(coordinator), 'bind')!).port;
    const workers = ddpmServices().filter(([n]) => invocation(n).command === 'worker');
    for (const [name, s] of workers) {
      const inv = invocation(name);
      expect(endpoint(String(inv.flags.get('connect')))).toEqual({ host: coordinator, port });
      if (s.healthcheck) expect(JSON.stringify(s.healthcheck.test)).toContain(`:${metricsPortOf(inv)}/healthz`);
    }
    const cpu = workers.filter(([, s]) => s.build.target === 'cpu' && !s.profiles);
    expect(cpu.length).toBe(2);
    const names = cpu.map(([n]) => invocation(n).flags.get('name'));
    expect(new Set(names).size).toBe(2);
    const gpu = workers.filter(([, s]) => s.build.target === 'gpu');
    expect(gpu.length).toBeGreaterThanOrEqual(1);
    for (const [name, s] of gpu) {
      expect(s.profiles).toContain('gpu');
      expect(invocation(name).flags.get('backend')).toBe('tensorflow');
      const devices = s.deploy.resources.reservations.devices as Doc[];
      expect(devices.some((d) => d.driver === 'nvidia' && d.capabilities.includes('gpu'))).toBe(true);
    }
  });

  test('bind mounts exist; Prometheus scrapes the coordinator and every worker with a metrics port', () => {
    for (const [name, s] of Object.entries(services())) {
      for (const v of (s.volumes ?? []) as string[]) {
        const [source] = v.split(':');
        if (source.startsWith('.')) expect(`${name}: ${source} ${fs.existsSync(path.join(DEPLOY, source))}`).toBe(`${name}: ${source} true`);
      }
    }
    const prom = services().prometheus;
    const mounts = new Map((prom.volumes as string[]).map((v) => v.split(':')).map(([src, target]) => [target, src]));
    const configFlag = (prom.command as string[]).find((c) => c.startsWith('--config.file='))!.split('=')[1];
    expect(path.join(DEPLOY, mounts.get(configFlag)!)).toBe(path.join(DEPLOY, 'prometheus/prometheus.yml'));
    for (const rules of promConfig.rule_files as string[]) {
      expect(mounts.get(rules)).toBeDefined();
      expect(classify(path.posix.normalize(mounts.get(rules)!))).toBe('prometheus-rules');
    }
    const targets = new Set<string>();
    for (const job of promConfig.scrape_configs as Doc[]) {
      expect(job.metrics_path ?? '/metrics').toBe('/metrics');
      for (const sc of job.static_configs ?? []) for (const t of sc.targets) targets.add(t);
      for (const dns of job.dns_sd_configs ?? []) for (const n of dns.names) targets.add(`${n}:${dns.port}`);
    }
    const scraped = ddpmServices().filter(([n]) => metricsPortOf(invocation(n)) > 0);
    expect(scraped.length).toBe(ddpmServices().length);
    for (const [name] of scraped) expect([...targets]).toContain(`${name}:${metricsPortOf(invocation(name))}`);
    for (const t of targets) expect(Object.keys(services())).toContain(t.split(':')[0]);
  });

  test('Grafana is provisioned with the Prometheus service and the dashboards directory', () => {
    const grafana = services().grafana;
    const mounts = new Map((grafana.volumes as string[]).map((v) => v.split(':')).map(([src, target]) => [path.posix.normalize(src), target]));
    expect(mounts.get('grafana/provisioning')).toBe('/etc/grafana/provisioning');
    for (const f of byKind('grafana-datasources')) {
      for (const ds of parseYaml(f).datasources as Doc[]) {
        expect(ds.type).toBe('prometheus');
        const url = new URL(ds.url);
        expect(Object.keys(services())).toContain(url.hostname);
        expect((services()[url.hostname].ports as string[]).map((p) => String(p).split(':').pop())).toContain(url.port);
      }
    }
    const dashboardsDir = mounts.get('grafana/dashboards');
    expect(dashboardsDir).toBeDefined();
    for (const f of byKind('grafana-dashboard-provider')) {
      for (const p of parseYaml(f).providers as Doc[]) expect(p.options.path).toBe(dashboardsDir);
    }
    const home = grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH as string | undefined;
    if (home) expect(byKind('grafana-dashboard')).toContain(`grafana/dashboards/${path.posix.relative(dashboardsDir!, home)}`);
  });
});

describe('Prometheus configs', () => {
  test('rules: every expression uses existing metrics; the Kubernetes copy equals deploy/prometheus/rules.yml', () => {
    const cm = k8s.find(({ doc }) => doc.kind === 'ConfigMap' && doc.data?.['rules.yml'])!;
    for (const f of byKind('prometheus-rules')) {
      const rules = parseYaml(f);
      let n = 0;
      for (const g of rules.groups as Doc[]) {
        for (const r of g.rules as Doc[]) {
          checkPromql(r.expr, series, jobs, `deploy/${f} ${r.alert ?? r.record}`);
          n++;
        }
      }
      expect(n).toBeGreaterThan(0);
    }
    expect(YAML.parse(cm.doc.data['rules.yml'])).toEqual(parseYaml('prometheus/rules.yml'));
    for (const config of [promConfig, k8sPromConfig]) expect(config.rule_files).toEqual(['/etc/prometheus/rules.yml']);
  });

  test('both configs have the jobs ddpm-coordinator and ddpm-workers', () => {
    for (const config of [promConfig, k8sPromConfig]) {
      expect((config.scrape_configs as Doc[]).map((j) => j.job_name).sort()).toEqual(['ddpm-coordinator', 'ddpm-workers']);
    }
  });
});

describe('Grafana dashboard', () => {
  interface Target { expr: string; legend: string; panel: string }
  const dashboards = () => byKind('grafana-dashboard').map((f) => ({ f, d: JSON.parse(read(f)) as Doc }));
  const panelsOf = (d: Doc): Doc[] => (d.panels as Doc[]).flatMap((p) => [p, ...(p.panels ?? [])]);
  const targetsOf = (d: Doc): Target[] => panelsOf(d).flatMap((p) => (p.targets ?? []).map((t: Doc) => ({ expr: t.expr, legend: t.legendFormat ?? '', panel: p.title })));

  test('every PromQL expression references only existing ddpm_ metrics and labels; legends name real labels', () => {
    for (const { f, d } of dashboards()) {
      expect(targetsOf(d).length).toBeGreaterThan(0);
      for (const t of targetsOf(d)) {
        expect(typeof t.expr).toBe('string');
        const refs = checkPromql(t.expr, series, jobs, `deploy/${f} "${t.panel}"`);
        const labels = new Set([...TARGET_LABELS, ...refs.grouping, ...refs.metrics.flatMap((m) => [...series.get(m)!.labels])]);
        for (const m of t.legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
          expect(`${t.panel}: ${m[1]} ${labels.has(m[1])}`).toBe(`${t.panel}: ${m[1]} true`);
        }
      }
    }
  });

  test('panels for loss, loss by timestep, images/s, step time, workers, bytes, reassigned and backed-up units, rejected results, checkpoint age', () => {
    const { d } = dashboards().find(({ f }) => f === 'grafana/dashboards/ddpm.json')!;
    const used = new Set(targetsOf(d).flatMap((t) => promqlRefs(t.expr).metrics));
    const required = [
      METRIC.loss, METRIC.lossByTimestep, METRIC.imagesPerSecond, METRIC.workers, METRIC.sentBytes, METRIC.receivedBytes,
      METRIC.unitsReassigned, METRIC.unitsBackedUp, METRIC.resultsRejected, METRIC.checkpointLastSuccess,
    ];
    for (const m of required) expect(`${m}: ${used.has(m)}`).toBe(`${m}: true`);
    expect([...used].some((m) => m.startsWith(`${METRIC.stepDuration}_`))).toBe(true);
    const rejected = targetsOf(d).filter((t) => t.expr.includes(METRIC.resultsRejected));
    expect(rejected.some((t) => promqlRefs(t.expr).grouping.includes('reason'))).toBe(true);
    const byBucket = targetsOf(d).filter((t) => t.expr.includes(METRIC.lossByTimestep));
    expect(byBucket.some((t) => t.legend.includes('{{bucket}}'))).toBe(true);
  });

  test('panels use the datasource variable; ids and uid are set', () => {
    for (const { f, d } of dashboards()) {
      expect(typeof d.uid).toBe('string');
      expect(typeof d.title).toBe('string');
      const vars = (d.templating?.list ?? []) as Doc[];
      expect(vars.some((v) => v.name === 'datasource' && v.type === 'datasource' && v.query === 'prometheus')).toBe(true);
      const panels = panelsOf(d);
      expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
      for (const p of panels.filter((x) => x.type !== 'row')) {
        expect(`${f} ${p.title}: ${p.datasource?.uid}`).toBe(`${f} ${p.title}: \${datasource}`);
        expect(p.gridPos).toEqual(expect.objectContaining({ x: expect.any(Number), y: expect.any(Number), w: expect.any(Number), h: expect.any(Number) }));
      }
    }
  });
});

describe('Kubernetes manifests', () => {
  const docs = () => k8s.map(({ doc }) => doc);
  const find = (kind: string, name: string) => docs().find((d) => d.kind === kind && d.metadata?.name === name);
  const ddpmContainers = () => docs().filter((d) => d.kind === 'Deployment').flatMap((d) =>
    (d.spec.template.spec.containers as Doc[]).filter((c) => String(c.image).startsWith('ddpm-cluster:')).map((c) => ({ deployment: d, container: c })));
  const invocationOf = (d: Doc, c: Doc) => checkDdpmArgs(c.args, `kubernetes ${d.metadata.name}/${c.name} args`);
  const containerPort = (c: Doc, port: number | string): number | undefined =>
    typeof port === 'number' ? port : (c.ports as Doc[] | undefined)?.find((p) => p.name === port)?.containerPort;
  const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => labels?.[k] === v);

  test('every object is namespaced in ddpm (created by the first file), Deployments select their pods', () => {
    const files = byKind('kubernetes');
    expect(k8s.find(({ doc }) => doc.kind === 'Namespace')?.file).toBe(files[0]);
    const ns = find('Namespace', 'ddpm');
    expect(ns).toBeDefined();
    for (const { file, doc } of k8s) {
      expect(`${file}: ${typeof doc.apiVersion}/${typeof doc.kind}/${typeof doc.metadata?.name}`).toBe(`${file}: string/string/string`);
      if (doc.kind !== 'Namespace') expect(`${file} ${doc.kind}/${doc.metadata.name}: ${doc.metadata.namespace}`).toBe(`${file} ${doc.kind}/${doc.metadata.name}: ddpm`);
      if (doc.kind === 'Deployment') expect(selects(doc.spec.selector.matchLabels, doc.spec.template.metadata.labels)).toBe(true);
    }
  });

  test('ddpm containers use the image ENTRYPOINT, Dockerfile targets and valid ddpm args', () => {
    const { stages } = dockerStages(read('Dockerfile'));
    expect(ddpmContainers().length).toBeGreaterThanOrEqual(2);
    for (const { deployment, container } of ddpmContainers()) {
      expect(container.command).toBeUndefined();
      expect(stages.has(String(container.image).split(':')[1])).toBe(true);
      const inv = invocationOf(deployment, container);
      for (const v of inv.flags.values()) {
        for (const m of String(v).matchAll(/\$\((\w+)\)/g)) {
          expect((container.env as Doc[] | undefined)?.some((e) => e.name === m[1])).toBe(true);
        }
      }
      // scraped where it serves metrics, on the port it serves them
      const ann = deployment.spec.template.metadata.annotations ?? {};
      expect(ann['prometheus.io/scrape']).toBe('true');
      expect(Number(ann['prometheus.io/port'])).toBe(metricsPortOf(inv));
      expect(ann['prometheus.io/path'] ?? '/metrics').toBe('/metrics');
      expect(containerPort(container, 'metrics')).toBe(metricsPortOf(inv));
      for (const probe of [container.livenessProbe, container.readinessProbe].filter(Boolean)) {
        expect(containerPort(container, probe.httpGet.port)).toBe(metricsPortOf(inv));
      }
    }
  });

  test('coordinator: 1 replica, Recreate, --resume, checkpoints on a PVC, a Service on the CLI default ports', () => {
    const coordinators = ddpmContainers().filter(({ deployment, container }) => invocationOf(deployment, container).command === 'coordinator');
    expect(coordinators.length).toBe(1);
    const { deployment, container } = coordinators[0];
    const inv = invocationOf(deployment, container);
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy.type).toBe('Recreate');
    expect(inv.flags.get('resume')).toBe(true);
    const dir = flagValue(inv, 'checkpoint-dir')!;
    const mount = (container.volumeMounts as Doc[]).find((m) => dir === m.mountPath || dir.startsWith(`${m.mountPath}/`));
    expect(mount).toBeDefined();
    const volume = (deployment.spec.template.spec.volumes as Doc[]).find((v) => v.name === mount.name);
    expect(find('PersistentVolumeClaim', volume.persistentVolumeClaim.claimName)).toBeDefined();
    const bindPort = endpoint(flagValue(inv, 'bind')!).port;
    expect(bindPort).toBe(endpoint(defaultOf('coordinator', 'bind')).port);
    expect(metricsPortOf(inv)).toBe(Number(defaultOf('coordinator', 'metrics-port')));
    const services = docs().filter((d) => d.kind === 'Service' && selects(d.spec.selector, deployment.spec.template.metadata.labels));
    expect(services.map((s) => s.metadata.name)).toEqual(['ddpm-coordinator']);
    const svc = services[0];
    for (const want of [bindPort, metricsPortOf(inv)]) {
      const p = (svc.spec.ports as Doc[]).find((x) => x.port === want);
      expect(p).toBeDefined();
      expect(containerPort(container, p.targetPort ?? p.port)).toBe(want);
    }
    // /readyz is 503 until workers attach; workers find the coordinator through this Service.
    if (container.readinessProbe?.httpGet?.path === '/readyz') expect(svc.spec.publishNotReadyAddresses).toBe(true);
  });

  test('workers: one GPU each, --backend tensorflow, --connect the coordinator Service, named after the pod', () => {
    const workers = ddpmContainers().filter(({ deployment, container }) => invocationOf(deployment, container).command === 'worker');
    expect(workers.length).toBeGreaterThanOrEqual(1);
    for (const { deployment, container } of workers) {
      const inv = invocationOf(deployment, container);
      expect(inv.flags.get('backend')).toBe('tensorflow');
      expect(container.image).toBe('ddpm-cluster:gpu');
      expect(String(container.resources.limits['nvidia.com/gpu'])).toBe('1');
      const { host, port } = endpoint(String(inv.flags.get('connect')));
      const svc = find('Service', host);
      expect(svc).toBeDefined();
      expect((svc.spec.ports as Doc[]).some((p) => p.port === port)).toBe(true);
      const coordinator = ddpmContainers().find(({ deployment: d, container: c }) => invocationOf(d, c).command === 'coordinator')!;
      expect(selects(svc.spec.selector, coordinator.deployment.spec.template.metadata.labels)).toBe(true);
      expect(endpoint(flagValue(invocationOf(coordinator.deployment, coordinator.container), 'bind')!).port).toBe(port);
      expect(inv.flags.get('name')).toBe('$(POD_NAME)');
      const env = (container.env as Doc[]).find((e) => e.name === 'POD_NAME');
      expect(env.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
      expect(metricsPortOf(inv)).toBeGreaterThan(0);
    }
  });

  test('the Prometheus ConfigMap scrapes annotated coordinator and worker pods on their metrics port', () => {
    for (const job of k8sPromConfig.scrape_configs as Doc[]) {
      expect(job.kubernetes_sd_configs[0].role).toBe('pod');
      const keeps = (job.relabel_configs as Doc[]).filter((r) => r.action === 'keep');
      const keep = (label: string) => keeps.find((r) => r.source_labels.includes(label))?.regex;
      expect(keep('__meta_kubernetes_pod_annotation_prometheus_io_scrape')).toBe('true');
      const component = keep('__meta_kubernetes_pod_label_app_kubernetes_io_component');
      const portName = keep('__meta_kubernetes_pod_container_port_name');
      const pods = ddpmContainers().filter(({ deployment }) => new RegExp(`^(?:${component})$`).test(deployment.spec.template.metadata.labels['app.kubernetes.io/component']));
      expect(`${job.job_name}: ${pods.length}`).not.toBe(`${job.job_name}: 0`);
      for (const { container } of pods) expect((container.ports as Doc[]).some((p) => new RegExp(`^(?:${portName})$`).test(p.name))).toBe(true);
    }
    const prom = find('Deployment', 'prometheus');
    const mounted = (prom.spec.template.spec.containers[0].volumeMounts as Doc[]).find((m) => m.mountPath === '/etc/prometheus');
    const cmName = (prom.spec.template.spec.volumes as Doc[]).find((v) => v.name === mounted.name).configMap.name;
    expect(find('ConfigMap', cmName).data['prometheus.yml']).toBeDefined();
    expect(prom.spec.template.spec.serviceAccountName).toBeDefined();
  });
});

describe('README', () => {
  const codeLines = (md: string) => [...md.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].flatMap((m) => m[1].split('\n'));

  test('deploy/README.md describes every file and gives the build command', () => {
    const md = read('README.md');
    for (const f of FILES.filter((x) => x !== 'README.md')) expect(`${f}: ${md.includes(f)}`).toBe(`${f}: true`);
    expect(md).toContain('docker build -f deploy/Dockerfile --target cpu .');
  });

  test('ddpm commands and deploy/ paths in the READMEs are valid', () => {
    const root = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = /\n## Deploy\n([\s\S]*?)(\n## |$)/.exec(root)?.[1];
    expect(section).toBeDefined();
    for (const [where, md] of [['deploy/README.md', read('README.md')], ['README.md Deploy', section!]] as const) {
      for (const m of md.matchAll(/\bdeploy\/[\w./-]*[\w/]/g)) expect(`${where}: ${m[0]} ${fs.existsSync(path.join(ROOT, m[0]))}`).toBe(`${where}: ${m[0]} true`);
      // continuation lines joined; comments dropped
      const lines = codeLines(md).join('\n').replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.replace(/\s+#.*$/, ''));
      for (const line of lines) {
        const m = /(?:\bddpm|ddpm-cluster:(?:cpu|gpu))\s+(coordinator|worker)\b(.*)$/.exec(line);
        if (!m) continue;
        const args = [m[1], ...m[2].trim().split(/\s+/).filter((a) => a !== '' && a !== '...')];
        checkDdpmArgs(args.map((a) => a.replace(/^(['"])(.*)\1$/, '$2')), `${where}: ${line.trim()}`);
      }
    }
  });
});
