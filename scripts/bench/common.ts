/**
 * Shared pieces of the benchmarks: flags, hardware and load description, medians, markdown tables,
 * JSON output, and a pool of child processes driven over Node's IPC channel.
 */
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ImageDataset } from '../../src/data/types';

export const ROOT = path.resolve(__dirname, '..', '..');
export const RESULTS_DIR = path.join(ROOT, 'bench-results');

export type FlagValue = string | number | boolean | number[] | string[];
export type FlagSpec<T extends Record<string, FlagValue>> = { [K in keyof T]: { default: T[K]; help: string } };

/** `--name value`, `--name=value`, `--flag` for booleans; lists are comma-separated. */
export function parseFlags<T extends Record<string, FlagValue>>(usage: string, spec: FlagSpec<T>, argv = process.argv.slice(2)): T {
  const out = Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, v.default])) as Record<string, FlagValue>;
  const help = () => {
    const lines = Object.entries(spec).map(([k, v]) => `  --${k.padEnd(18)} ${v.help} (default ${JSON.stringify(v.default)})`);
    return `${usage}\n\nflags:\n${lines.join('\n')}`;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(help());
      process.exit(0);
    }
    const m = /^--([^=]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1] in spec)) {
      console.error(`unknown argument ${arg}\n\n${help()}`);
      process.exit(2);
    }
    const key = m[1];
    const def = spec[key].default;
    let raw = m[2];
    if (typeof def === 'boolean') {
      out[key] = raw === undefined ? true : raw !== 'false';
      continue;
    }
    if (raw === undefined) raw = argv[++i];
    if (raw === undefined) {
      console.error(`--${key} needs a value`);
      process.exit(2);
    }
    if (typeof def === 'number') out[key] = Number(raw);
    else if (Array.isArray(def)) out[key] = raw.split(',').filter((s) => s !== '').map((s) => (typeof def[0] === 'number' ? Number(s) : s)) as number[] | string[];
    else out[key] = raw;
    if (typeof def === 'number' && !Number.isFinite(out[key] as number)) {
      console.error(`--${key} must be a number, got ${raw}`);
      process.exit(2);
    }
  }
  return out as T;
}

export interface Hardware {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  zeromq: string;
  platform: string;
  loadAvgStart: number[];
  loadAvgEnd?: number[];
  startedAt: string;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

export function hardware(): Hardware {
  let zeromq = '?';
  try {
    zeromq = (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'zeromq', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // leave '?'
  }
  return {
    nproc: os.availableParallelism(), cpuModel: cpuModel(), memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version,
    zeromq, platform: `${os.platform()} ${os.release()}`, loadAvgStart: os.loadavg().map((l) => Number(l.toFixed(2))), startedAt: new Date().toISOString(),
  };
}

export function describeHardware(h: Hardware): string {
  const end = h.loadAvgEnd ? `, at end ${h.loadAvgEnd.join(' ')}` : '';
  return `${h.nproc} CPU(s), ${h.cpuModel}, ${h.memoryGiB} GiB; Node ${h.node}, zeromq ${h.zeromq}; load average (1/5/15 min) at start ${h.loadAvgStart.join(' ')}${end}`;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 10 ** -digits) return x.toExponential(1);
  return x.toFixed(digits);
}

export function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}

/** A markdown table (what README's Performance section pastes). */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...cells.map(line)].join('\n');
}

export function writeResults(name: string, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** Uint8 pixels of a fixed pattern: the loop only needs the right shape, never real images. */
export function syntheticDataset(size: number, channels: number, count = 256): ImageDataset {
  const pixels = new Uint8Array(count * size * size * channels);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return { count, height: size, width: size, channels, pixels, source: 'synthetic' };
}

/** A finite gradient of n values that is not all one value (what fixed-delay workers return). */
export function gradientPattern(n: number): Float32Array {
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) g[i] = ((i % 7) - 3) * 1e-3;
  return g;
}

// ---- child processes ----------------------------------------------------------------------------

export type ChildEvent = { event: string; [key: string]: unknown };

/** A forked child speaking JSON over IPC: commands in, events out. */
export class Child {
  readonly proc: ChildProcess;
  private readonly waiters: { event: string; resolve: (e: ChildEvent) => void; reject: (err: Error) => void }[] = [];
  private readonly backlog: ChildEvent[] = [];
  readonly samples: ChildEvent[] = [];
  private exited = false;

  constructor(readonly name: string, script: string, env: Record<string, string> = {}) {
    this.proc = fork(path.join(__dirname, script), [], {
      execArgv: ['--expose-gc', '--enable-source-maps'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (m: ChildEvent) => {
      if (m.event === 'sample') {
        this.samples.push(m);
        return;
      }
      const i = this.waiters.findIndex((w) => w.event === m.event);
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
      else this.backlog.push(m);
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`child ${name} exited (${signal ?? code}) while waiting for "${w.event}"`));
    });
  }

  send(command: Record<string, unknown>): void {
    this.proc.send(command);
  }

  /** The next event of this name (one already received counts). */
  wait(event: string, timeoutMs = 600000): Promise<ChildEvent> {
    const i = this.backlog.findIndex((e) => e.event === event);
    if (i >= 0) return Promise.resolve(this.backlog.splice(i, 1)[0]);
    if (this.exited) return Promise.reject(new Error(`child ${this.name} has exited`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`child ${this.name}: no "${event}" within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ event, resolve: (e) => { clearTimeout(t); resolve(e); }, reject: (err) => { clearTimeout(t); reject(err); } });
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.send({ cmd: 'exit' });
    const kill = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(kill);
  }
}

/** `n` children of the bench worker script, started in parallel and ready. */
export async function startPool(n: number, prefix = 'bench'): Promise<Child[]> {
  const children = Array.from({ length: n }, (_, i) => new Child(`${prefix}-${i}`, 'benchWorker.js'));
  await Promise.all(children.map((c) => c.wait('ready', 60000)));
  return children;
}

export async function stopPool(children: Child[]): Promise<void> {
  await Promise.all(children.map((c) => c.stop()));
}
