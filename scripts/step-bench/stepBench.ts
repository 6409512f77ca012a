/**
 * One training step of the U-Net (UnitGradientComputer.compute on one work unit of N examples:
 * forward, backward, every parameter's gradient) on a tfjs backend, timed side by side with the
 * same architecture in PyTorch (scripts/step-bench/unet_torch.py, Debian's python3-torch) with 1
 * and with 2 threads. Steps are interleaved (tfjs, torch 1 thread, torch 2 threads, repeat), so
 * that a change in the machine's load hits all three alike; medians over the repeats.
 *
 * Also: the parameter counts of both models (they must agree; the ch64 config must have
 * 6,472,195), a tf.profile of one step (kernel time by kernel name), the wasm heap size, and the
 * load from other processes during the run (CPU time of the whole machine minus ours). On webgpu:
 * the host's time to issue the step's kernels (a step bound by the host has it close to the
 * whole), and with --sweep, values of a tfjs flag compared step by step in one process.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as inspector from 'inspector';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import * as tf from '@tensorflow/tfjs-core';
import { BackendName, initBackend, isBackendName } from '../../src/backend/backend';
import { countDispatches } from '../../src/backend/webgpu/dispatchCount';
import { UNetConfig, isPresetName, presetConfig, validateConfig } from '../../src/model/config';
import { parameterCount } from '../../src/model/paramSpecs';
import { UNetModel } from '../../src/model/unetModel';
import type { UnitGradientComputer } from '../../src/training/unitGradients';
import { WorkUnit } from '../../src/training/workUnit';
import { ComputeThreads, ThreadInit } from '../../src/worker/computeThreads';
import { gradientComputer } from '../../src/worker/unitComputer';

const ROOT = path.resolve(__dirname, '..', '..');
const BENCH_DIR = process.env.STEP_BENCH_DIR ?? path.join(ROOT, 'scripts', 'step-bench');

/** The PERFORMANCE.md configurations besides the presets: 32x32x3, mult 1,2,2, attention at 16. */
const EXTRA_CONFIGS: Record<string, UNetConfig & { expectedParams?: number }> = {
  ch64: { imageSize: 32, imageChannels: 3, channels: 64, channelMult: [1, 2, 2], resBlocks: 2, attentionResolutions: [16], dropout: 0, normGroups: 32, expectedParams: 6472195 },
  ch32: { imageSize: 32, imageChannels: 3, channels: 32, channelMult: [1, 2, 2], resBlocks: 2, attentionResolutions: [16], dropout: 0, normGroups: 32, expectedParams: 1624323 },
};

interface Flags {
  preset: string[];
  batch: number;
  backend: string;
  repeats: number;
  warmup: number;
  torchThreads: number[];
  torch: boolean;
  profile: boolean;
  shapes: number;
  python: string;
  torchDevice: string;
  json: string;
  threads: number;
  tfFlags: Record<string, number | boolean | string>;
  sweep: { flag: string; values: number[] } | undefined;
  cpuProfile: string;
  pipeline: boolean;
}

const USAGE = `npm run bench:step -- [--preset ch64,mnist-fast] [--batch 16] [--backend wasm] [--repeats 5]
  presets: ${['ch64', 'ch32', 'tiny', 'mnist-fast', 'mnist', 'cifar10'].join(', ')}`;

function parseFlags(argv: string[]): Flags {
  const f: Flags = { preset: ['ch64', 'mnist-fast'], batch: 16, backend: 'wasm', repeats: 5, warmup: 1, torchThreads: [1, 2], torch: true, profile: true, shapes: 0, python: '/usr/bin/python3', torchDevice: 'cpu', json: 'bench-results/step.json', threads: 1, tfFlags: {}, sweep: undefined, cpuProfile: '', pipeline: true };
  const help = `${USAGE}
flags:
  --preset LIST        configs, comma-separated (default ch64,mnist-fast)
  --batch N            examples in the work unit (default 16)
  --backend NAME       tfjs backend: wasm, cpu, webgpu, tensorflow (default wasm)
  --repeats N          timed steps of each kind, interleaved (default 5)
  --warmup N           untimed steps of each kind first (default 1)
  --torch-threads LIST PyTorch thread counts (default 1,2)
  --no-torch           tfjs only
  --no-profile         skip the tf.profile step
  --no-pipeline        make each step's images and noise at its start, not during the step
                       before (as the in-process trainer does, while a GPU computes)
  --shapes N           also list the N costliest (kernel, input shapes) pairs of the profile
  --python PATH        interpreter with torch (default /usr/bin/python3)
  --torch-device NAME  cpu or cuda (GPU runs: a torch build with CUDA, via --python)
  --json PATH          results file (default bench-results/step.json)
  --threads N          tfjs computes the batch as N units of batch/N, each on its own thread at once
                       (what \`ddpm worker --threads N\` does; default 1: one unit, this thread)
  --tf-flag NAME=VALUE set a tfjs environment flag once the backend has loaded (repeatable), e.g.
                       WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64
  --sweep NAME=V1,V2   instead of one value of a numeric tfjs flag that kernels read as they run
                       (WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE), several in one process: each repeat
                       runs one step with each value in turn, so the values are compared pairwise
                       under the same load, heap and GPU state; a median for each
  --cpu-profile PATH   a V8 CPU profile of this process over the timed steps (where the host's time
                       goes; scripts/gpu/cpuProfileTop.js summarises it)
  --kernels [--small]  instead: single-kernel GFLOP/s at ch64's (mnist-fast's) shapes`;
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unexpected argument ${argv[i]}\n${help}`);
    const key = m[1];
    const value = () => m[2] ?? argv[++i];
    switch (key) {
      case 'help': console.log(help); process.exit(0); break;
      case 'preset': f.preset = value().split(',').filter(Boolean); break;
      case 'batch': f.batch = Number(value()); break;
      case 'backend': f.backend = value(); break;
      case 'repeats': f.repeats = Number(value()); break;
      case 'warmup': f.warmup = Number(value()); break;
      case 'torch-threads': f.torchThreads = value().split(',').filter(Boolean).map(Number); break;
      case 'no-torch': f.torch = false; break;
      case 'no-profile': f.profile = false; break;
      case 'no-pipeline': f.pipeline = false; break;
      case 'shapes': f.shapes = Number(value()); break;
      case 'python': f.python = value(); break;
      case 'torch-device': f.torchDevice = value(); break;
      case 'json': f.json = value(); break;
      case 'threads': f.threads = Number(value()); break;
      case 'cpu-profile': f.cpuProfile = value(); break;
      case 'sweep': {
        const [flag, raw] = value().split('=');
        const values = (raw ?? '').split(',').filter(Boolean).map(Number);
        if (!flag || values.length < 2 || values.some((v) => !Number.isFinite(v))) throw new Error('--sweep takes NAME=V1,V2,... (two or more numbers)');
        f.sweep = { flag, values };
        break;
      }
      case 'tf-flag': {
        const [flag, raw] = value().split('=');
        if (!flag || raw === undefined) throw new Error('--tf-flag takes NAME=VALUE');
        f.tfFlags[flag] = raw === 'true' ? true : raw === 'false' ? false : Number.isNaN(Number(raw)) ? raw : Number(raw);
        break;
      }
      default: throw new Error(`unknown flag --${key}\n${help}`);
    }
  }
  if (!Number.isInteger(f.batch) || f.batch < 1) throw new Error('--batch must be a positive integer');
  if (!Number.isInteger(f.repeats) || f.repeats < 1) throw new Error('--repeats must be a positive integer');
  if (!Number.isInteger(f.threads) || f.threads < 1 || f.batch % f.threads !== 0) throw new Error('--threads must be a positive integer that divides --batch');
  return f;
}

function configOf(name: string): UNetConfig & { expectedParams?: number } {
  if (name in EXTRA_CONFIGS) return { ...EXTRA_CONFIGS[name] };
  if (isPresetName(name)) return presetConfig(name);
  throw new Error(`unknown config "${name}" (${USAGE})`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ---- load from other processes -------------------------------------------------------------------

const TICK_MS = 10; // USER_HZ = 100 on Linux

function machineBusyMs(): number {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] ?? 0)) * TICK_MS;
}

function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime, stime
  } catch {
    return 0;
  }
}

class LoadMeter {
  private readonly wall0 = performance.now();
  private readonly busy0 = machineBusyMs();
  private readonly self0 = process.cpuUsage();
  private readonly child0: number;
  constructor(private readonly childPid: number | undefined) {
    this.child0 = processCpuMs(childPid);
  }
  /** Average cores used by everything except this benchmark (and its torch child) since start. */
  othersCores(): number {
    const wall = performance.now() - this.wall0;
    const busy = machineBusyMs() - this.busy0;
    const selfUsage = process.cpuUsage(this.self0);
    const self = (selfUsage.user + selfUsage.system) / 1000;
    const child = processCpuMs(this.childPid) - this.child0;
    return Math.max(0, (busy - self - child) / wall);
  }
}

/** The V8 profiler of this very process, through the inspector protocol. */
class CpuProfiler {
  private constructor(private readonly session: inspector.Session) {}
  private post(method: string): Promise<unknown> {
    return new Promise((resolve, reject) => this.session.post(method, (err, result) => (err ? reject(err) : resolve(result))));
  }
  static async start(): Promise<CpuProfiler> {
    const session = new inspector.Session();
    session.connect();
    const p = new CpuProfiler(session);
    await p.post('Profiler.enable');
    await p.post('Profiler.start');
    return p;
  }
  async stopTo(file: string): Promise<void> {
    const { profile } = (await this.post('Profiler.stop')) as { profile: unknown };
    this.session.disconnect();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(profile));
  }
}

// ---- PyTorch child ---------------------------------------------------------------------------------

interface TorchInfo { params: number; torch: string; parallel: string[]; tf32: boolean }

class TorchChild {
  private readonly proc: ChildProcess;
  private readonly lines: string[] = [];
  private waiter: ((line: string) => void) | undefined;
  private stderr = '';

  constructor(python: string, config: UNetConfig, batch: number, device: string) {
    const cfg = { ...config };
    delete (cfg as { expectedParams?: number }).expectedParams;
    this.proc = spawn(python, [path.join(BENCH_DIR, 'unet_torch.py'), JSON.stringify(cfg), String(batch), device], { stdio: ['pipe', 'pipe', 'pipe'] });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(line);
      } else this.lines.push(line);
    });
    this.proc.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  private next(): Promise<Record<string, unknown>> {
    const parse = (line: string) => JSON.parse(line) as Record<string, unknown>;
    if (this.lines.length) return Promise.resolve(parse(this.lines.shift()!));
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`torch child exited (${code}): ${this.stderr.slice(-2000)}`));
      this.proc.once('exit', onExit);
      this.waiter = (line) => {
        this.proc.off('exit', onExit);
        resolve(parse(line));
      };
    });
  }

  async ready(): Promise<TorchInfo> {
    const e = await this.next();
    return e as unknown as TorchInfo;
  }

  async step(threads: number): Promise<number> {
    this.proc.stdin!.write(`step ${threads}\n`);
    const e = await this.next();
    return e.ms as number;
  }

  quit(): void {
    this.proc.stdin!.end('quit\n');
  }
}

// ---- tfjs step -------------------------------------------------------------------------------------

function makeUnit(config: UNetConfig, batch: number): WorkUnit {
  const per = config.imageSize * config.imageSize * config.imageChannels;
  const pixels = new Uint8Array(batch * per);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return {
    step: 0, unitId: 0, count: batch, pixels,
    timesteps: Int32Array.from({ length: batch }, (_, i) => (i * 397 + 11) % 1000),
    noiseSeeds: Uint32Array.from({ length: batch }, (_, i) => 1000 + i),
    flips: Uint8Array.from({ length: batch }, (_, i) => i % 2),
    dropoutSeed: 7,
  };
}

function wasmHeapBytes(): number | undefined {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength;
}

interface ProfileRow { kernel: string; ms: number; calls: number }
interface ShapeRow { key: string; ms: number; calls: number }

/** A tf.profile of one step and, on webgpu, the GPU programs it dispatched by program class: a
 * kernel may dispatch several programs or none (Reshape, Identity), so their number is a measure
 * of its own, the same on any machine. */
async function profileStep(computer: UnitGradientComputer, unit: WorkUnit): Promise<{ rows: ProfileRow[]; byShape: ShapeRow[]; kernelMs: number; wallMs: number; peakBytes: number; kernels: number; dispatches?: Record<string, number> }> {
  const t0 = performance.now();
  const { result: info, dispatches } = await countDispatches(() => tf.profile(async () => { await computer.compute(unit); }));
  const wallMs = performance.now() - t0;
  const byName = new Map<string, ProfileRow>();
  const byShape = new Map<string, ShapeRow>();
  let kernelMs = 0;
  const backendName = tf.getBackend();
  for (const k of info.kernels) {
    // tf.profile also lists custom-gradient ops (tf.fused.conv2d is one: "fusedConv2d__op") whose
    // kernels it lists again on their own: only registered kernels are counted.
    if (tf.getKernel(k.name, backendName) === undefined) continue;
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    kernelMs += ms;
    const row = byName.get(k.name) ?? { kernel: k.name, ms: 0, calls: 0 };
    row.ms += ms;
    row.calls += 1;
    byName.set(k.name, row);
    const key = `${k.name} ${k.inputShapes.map((sh) => `[${sh}]`).join(' ')}`;
    const srow = byShape.get(key) ?? { key, ms: 0, calls: 0 };
    srow.ms += ms;
    srow.calls += 1;
    byShape.set(key, srow);
  }
  const rows = [...byName.values()].sort((a, b) => b.ms - a.ms);
  const kernels = rows.reduce((sum, r) => sum + r.calls, 0);
  return { rows, byShape: [...byShape.values()].sort((a, b) => b.ms - a.ms), kernelMs, wallMs, peakBytes: info.peakBytes, kernels, dispatches };
}

function fmt(x: number, d = 0): string {
  return Number.isFinite(x) ? x.toFixed(d) : String(x);
}

async function benchConfig(name: string, flags: Flags) {
  const config = validateConfig(configOf(name));
  const expected = (configOf(name) as { expectedParams?: number }).expectedParams;
  const model = new UNetModel(config);
  const tfjsParams = parameterCount(config);
  if (expected !== undefined && tfjsParams !== expected) throw new Error(`${name}: tfjs model has ${tfjsParams} parameters, expected ${expected}`);

  const torch = flags.torch ? new TorchChild(flags.python, config, flags.batch, flags.torchDevice) : undefined;
  let torchInfo: TorchInfo | undefined;
  if (torch) {
    torchInfo = await torch.ready();
    if (torchInfo.params !== tfjsParams) throw new Error(`${name}: PyTorch model has ${torchInfo.params} parameters, tfjs ${tfjsParams}`);
  }

  const flat = model.initialParams(1, { noZeroInit: true });
  // What a worker computes with, here and on --threads' compute threads.
  const init: ThreadInit = { backend: tf.getBackend(), model: config, schedule: 'linear', timesteps: 1000, prediction: 'eps', snrGamma: 0 };
  const computer = gradientComputer(init);
  computer.setParams(flat, 0);
  const unit = makeUnit(config, flags.batch);
  // --threads k: k units of batch/k at once on k compute threads, their gradients summed here.
  const threads = flags.threads > 1 ? await ComputeThreads.start(flags.threads, init) : undefined;
  threads?.setParams(flat, 0);
  const parts = Array.from({ length: flags.threads }, (_, i) => ({ ...makeUnit(config, flags.batch / flags.threads), unitId: i }));
  // Every step computes the same unit from the same parameters: the gradient's bits must not
  // change (the README's claim of bit-identical training for any number of workers rests on it).
  let firstGrad: Buffer | undefined;
  let stepsWithOtherBits = 0;
  let issueMs = NaN;
  let inputMs = NaN;
  const tfjsStep = async () => {
    const t0 = performance.now();
    let lossSum: number;
    let grad: Float32Array;
    if (threads) {
      const results = await Promise.all(parts.map((u) => threads.compute(u)));
      grad = results[0].gradSum;
      for (const r of results.slice(1)) for (let i = 0; i < grad.length; i++) grad[i] += r.gradSum[i];
      lossSum = results.reduce((s, r) => s + r.lossSum, 0);
    } else {
      const pending = computer.compute(unit);
      // The next step's unit is this one again: its inputs made while this one computes.
      if (flags.pipeline) computer.prepare(unit);
      const result = await pending;
      grad = result.gradSum;
      lossSum = result.lossSum;
      issueMs = computer.lastIssueSeconds * 1000;
      inputMs = computer.lastInputSeconds * 1000;
    }
    const ms = performance.now() - t0;
    if (!Number.isFinite(lossSum)) throw new Error(`${name}: loss is ${lossSum}`);
    const bits = Buffer.from(grad.buffer, grad.byteOffset, grad.byteLength);
    if (firstGrad === undefined) firstGrad = Buffer.from(bits);
    else if (!firstGrad.equals(bits)) stepsWithOtherBits += 1;
    return ms;
  };

  const times: { tfjs: number[]; tfjsIssue: number[]; tfjsInputs: number[]; torch: Record<number, number[]>; sweep: Record<number, number[]> } = { tfjs: [], tfjsIssue: [], tfjsInputs: [], torch: {}, sweep: {} };
  for (const v of flags.sweep?.values ?? []) times.sweep[v] = [];
  for (const t of flags.torchThreads) times.torch[t] = [];
  for (let i = 0; i < flags.warmup; i++) {
    await tfjsStep();
    if (torch) for (const t of flags.torchThreads) await torch.step(t);
  }
  const tensorsBefore = tf.memory().numTensors;
  const load = new LoadMeter(torch?.pid);
  const profiler = flags.cpuProfile ? await CpuProfiler.start() : undefined;
  // Steps run back to back, as in training: no forced full GC before each (a step right after one
  // took 35-40 ms longer on mnist-fast, a third of its step, which training never pays).
  for (let r = 0; r < flags.repeats; r++) {
    if (flags.sweep) {
      for (const v of flags.sweep.values) {
        tf.env().set(flags.sweep.flag, v);
        times.sweep[v].push(await tfjsStep());
      }
      process.stdout.write('.');
      continue;
    }
    times.tfjs.push(await tfjsStep());
    times.tfjsIssue.push(issueMs);
    times.tfjsInputs.push(inputMs);
    if (torch) for (const t of flags.torchThreads) times.torch[t].push(await torch.step(t));
    process.stdout.write('.');
  }
  process.stdout.write('\n');
  if (profiler) await profiler.stopTo(path.resolve(flags.cpuProfile));
  const othersCores = load.othersCores();
  const leaked = tf.memory().numTensors - tensorsBefore;
  const replayStatus = computer.replayStatus;
  computer.dispose();
  // A fresh computer: its first step runs through tfjs (a replayed one has no kernels to profile).
  const profiled = flags.profile ? gradientComputer(init) : undefined;
  profiled?.setParams(flat, 0);
  const profile = profiled ? await profileStep(profiled, unit) : undefined;
  profiled?.dispose();
  await threads?.dispose();
  torch?.quit();

  const tfjsMs = median(times.tfjs);
  const torchMs = Object.fromEntries(flags.torchThreads.map((t) => [t, median(times.torch[t])]));
  return {
    name, config, batch: flags.batch, threads: flags.threads, params: tfjsParams, torchParams: torchInfo?.params, torchVersion: torchInfo && `${torchInfo.torch} (${flags.torchDevice}${torchInfo.tf32 ? ', TF32 on' : ''})`,
    tfjsMs, torchMs, samples: times, replayStatus, othersCores, leakedTensors: leaked, gradientSteps: flags.warmup + flags.repeats * (flags.sweep?.values.length ?? 1), stepsWithOtherGradientBits: stepsWithOtherBits, wasmHeapMiB: (wasmHeapBytes() ?? NaN) / 2 ** 20, profile,
  };
}

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  if (!isBackendName(flags.backend)) throw new Error(`unknown backend ${flags.backend}`);
  const backend = await initBackend(flags.backend as BackendName);
  // A backend's flags exist once its module has loaded; its kernels read them as they run.
  for (const [flag, v] of Object.entries(flags.tfFlags)) tf.env().set(flag, v);
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model;
  const load0 = os.loadavg();
  console.log(`# step bench: tfjs ${tf.version_core} on ${backend}, ${os.availableParallelism()} CPU(s) ${cpuModel}, Node ${process.version}`);
  console.log(`# load average at start: ${load0.map((l) => l.toFixed(2)).join(' ')}`);
  if (Object.keys(flags.tfFlags).length > 0) console.log(`# tfjs flags: ${Object.entries(flags.tfFlags).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const results = [];
  for (const name of flags.preset) {
    console.log(`## ${name}, batch ${flags.batch}`);
    const r = await benchConfig(name, flags);
    results.push(r);
    const ratio = (t: number) => (r.torchMs[t] / r.tfjsMs).toFixed(3);
    console.log(`params: tfjs ${r.params}${r.torchParams !== undefined ? `, PyTorch ${r.torchParams} (${r.torchParams === r.params ? 'equal' : 'DIFFERENT'})` : ''}`);
    if (!flags.sweep) console.log(`tfjs ${backend}${r.threads > 1 ? ` (${r.threads} threads)` : ''}: ${fmt(r.tfjsMs)} ms/step (samples ${r.samples.tfjs.map((x) => fmt(x)).join(' ')})`);
    if (flags.sweep) {
      for (const v of flags.sweep.values) console.log(`${flags.sweep.flag}=${v}: ${fmt(median(r.samples.sweep[v]))} ms/step (samples ${r.samples.sweep[v].map((x) => fmt(x)).join(' ')})`);
    }
    if (r.replayStatus !== undefined) console.log(`  webgpu step replay (DDPM_WEBGPU_REPLAY), by unit size: ${r.replayStatus}`);
    // On a GPU the kernels run after the host issues them; on a CPU backend issuing is running.
    if (backend === 'webgpu' && r.threads === 1 && !flags.sweep) {
      console.log(`  of which issuing every kernel (host time until the last was issued): ${fmt(median(r.samples.tfjsIssue))} ms (samples ${r.samples.tfjsIssue.map((x) => fmt(x)).join(' ')})`);
      console.log(`    of which making the unit's images and noise on the host: ${fmt(median(r.samples.tfjsInputs))} ms`);
    }
    for (const t of flags.torchThreads) {
      if (r.torchMs[t] === undefined || Number.isNaN(r.torchMs[t])) continue;
      console.log(`PyTorch ${r.torchVersion} ${t} thread(s): ${fmt(r.torchMs[t])} ms/step (samples ${r.samples.torch[t].map((x) => fmt(x)).join(' ')}); speed ratio tfjs/PyTorch = ${ratio(t)}x`);
    }
    console.log(`gradient bits across the ${r.gradientSteps} steps of the same unit: ${r.stepsWithOtherGradientBits === 0 ? 'identical' : `DIFFERENT in ${r.stepsWithOtherGradientBits} of them`}`);
    console.log(`load from other processes during the timed steps: ${r.othersCores.toFixed(2)} cores; ${Number.isNaN(r.wasmHeapMiB) ? '' : `wasm heap ${fmt(r.wasmHeapMiB)} MiB; `}tensors leaked per ${flags.repeats} steps: ${r.leakedTensors}`);
    if (r.profile) {
      const p = r.profile;
      console.log(`profile of one step: wall ${fmt(p.wallMs)} ms, kernel time ${fmt(p.kernelMs)} ms in ${p.kernels} kernel calls, peak ${fmt(p.peakBytes / 2 ** 20)} MiB of tensors`);
      console.log('| kernel | ms | calls | share |\n|---|---|---|---|');
      // Without timestamp queries (Dawn's GL backend) webgpu reports no kernel time: no shares.
      const share = (ms: number) => (p.kernelMs > 0 ? `${((100 * ms) / p.kernelMs).toFixed(1)}%` : 'n/a');
      for (const row of p.rows.slice(0, 15)) console.log(`| ${row.kernel} | ${fmt(row.ms)} | ${row.calls} | ${share(row.ms)} |`);
      if (p.dispatches !== undefined) {
        const programs = Object.entries(p.dispatches).sort((a, b) => b[1] - a[1]);
        console.log(`GPU programs dispatched in the step: ${programs.reduce((n, [, c]) => n + c, 0)} (${programs.map(([k, c]) => `${k} ${c}`).join(', ')})`);
      }
      if (flags.shapes > 0) {
        console.log('| kernel and input shapes | ms | calls |\n|---|---|---|');
        for (const row of p.byShape.slice(0, flags.shapes)) console.log(`| ${row.key} | ${fmt(row.ms, 1)} | ${row.calls} |`);
      }
    }
  }
  const load1 = os.loadavg();
  console.log(`# load average at end: ${load1.map((l) => l.toFixed(2)).join(' ')}`);
  console.log('\n| config | batch | params | tfjs threads | tfjs ms/step | PyTorch 1 thread | PyTorch 2 threads | ratio (1 thread) | ratio (2 threads) | others\' load |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const t1 = r.torchMs[1];
    const t2 = r.torchMs[2];
    console.log(`| ${r.name} | ${r.batch} | ${r.params.toLocaleString('en-US')} | ${r.threads} | ${fmt(r.tfjsMs)} | ${fmt(t1)} | ${fmt(t2)} | ${(t1 / r.tfjsMs).toFixed(3)}x | ${(t2 / r.tfjsMs).toFixed(3)}x | ${r.othersCores.toFixed(2)} cores |`);
  }
  const file = path.resolve(ROOT, flags.json);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify({ backend, cpuModel, node: process.version, loadAvg: { start: load0, end: load1 }, results }, null, 2)}\n`);
  console.log(`# results: ${path.relative(ROOT, file)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
