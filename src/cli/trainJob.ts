/**
 * What `ddpm train` and `ddpm coordinator` share: config, data, the coordinator loop with
 * progress lines, checkpoints, metrics and periodic sample grids, then a final grid from the EMA weights.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Argv } from 'yargs';
import { describeDataset, loadDataset } from '../data/dataset';
import { classCount } from '../model/config';
import { CheckpointStore, readCheckpointConfig, resolveCheckpointDir } from '../checkpoint/store';
import { Coordinator } from '../coordinator/coordinator';
import { UnitExecutor } from '../coordinator/executor';
import { ProgressReporter } from '../coordinator/progressReporter';
import { LogFormat } from '../coordinator/progress';
import { UNetModel } from '../model/unetModel';
import { parameterCount } from '../model/paramSpecs';
import { makeSchedule } from '../schedule';
import { generateImages, gridLabels, guidanceCaveat } from '../training/generate';
import { SamplerName } from '../diffusion/samplers';
import { TrainConfig, validateTrainConfig } from '../training/config';
import { describeInitFile } from '../checkpoint/initWeights';
import { TrainArgs, checkCount, checkGuidance, checkOutputDir, checkSamplingSteps, flagGiven, trainConfigFromArgs, writeOutputFile } from './options';
import { encodeGrid } from './grid';
import { onStopSignals } from './signals';
import { UsageError } from './errors';
import { MAX_THREADS, availableCores, parseCountFlag } from './localWorkers';
import { TrainingTelemetry } from '../metrics/trainingTelemetry';
import { PeriodicSampler, newestSampleGrid } from '../metrics/sampleGrids';

export interface JobArgs extends TrainArgs {
  'checkpoint-dir': string;
  'checkpoint-every': number;
  keep: number;
  resume: boolean;
  'init-from'?: string;
  'log-format': string;
  'log-every': number;
  'sample-n': number;
  'sample-steps': number;
  'sample-sampler': string;
  'sample-guidance': number;
  'sample-every': number;
  'update-threads': string;
  out?: string;
}

const samplerLabel = (name: string) => (name === 'ddim' ? 'DDIM' : name === 'dpm-solver++' ? 'DPM-Solver++' : name);

/** `--update-threads`: below a million parameters the passes take milliseconds; threads would
 * only add their start-up. */
export function resolveUpdateThreads(spec: string, parameters: number, cores: number): number {
  const n = parseCountFlag('update-threads', spec, 1, MAX_THREADS);
  if (n !== 'auto') return n;
  return parameters >= 1e6 ? Math.max(1, Math.min(cores, 8)) : 1;
}

export function withSampleEveryOption<T>(y: Argv<T>) {
  return y.option('sample-every', { type: 'number', default: 0, describe: 'steps between sample grids (--sample-n images, EMA weights) in CHECKPOINT_DIR/samples/; 0: off' });
}

/** The output flags, checked before training so that a typo does not fail the run at its end. */
function checkOutputFlags(a: JobArgs, timesteps: number): void {
  checkGuidance(a['sample-guidance'], 'sample-guidance');
  const n = a['sample-n'];
  checkCount(n, 'sample-n', 0, '0: no grid');
  const every = a['sample-every'];
  checkCount(every, 'sample-every', 0);
  if (every > 0 && !(n >= 1)) throw new UsageError(`--sample-every ${every} needs --sample-n of at least 1, got ${n}`);
  if (n > 0) checkSamplingSteps(a['sample-steps'], timesteps, 'sample-steps');
  if (n > 0 && a.out !== undefined) checkOutputDir(a.out, 'out');
  const dir = a['checkpoint-dir'];
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new UsageError(`--checkpoint-dir ${dir}: not a directory`);
}

export const log = (line: string) => process.stderr.write(`${line}\n`);

/** `warmupSteps` -> `warmup-steps`: every TrainConfig and UNetConfig field is its flag's name. */
const flagOf = (field: string) => field.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`);

/** Flags the user gave whose values a resumed run does not take (the checkpoint's win). */
export function ignoredOnResume(saved: TrainConfig, fromFlags: TrainConfig, given: (flag: string) => boolean): string[] {
  const differing = (a: object, b: object) => Object.keys(b).filter((k) => JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify((b as Record<string, unknown>)[k]));
  const modelFields = differing(saved.model, fromFlags.model);
  const fields = [...differing(saved, fromFlags).filter((k) => k !== 'model' && k !== 'steps'), ...modelFields];
  const flags = fields.map(flagOf).filter(given);
  if (modelFields.length > 0 && given('preset')) flags.push('preset');
  return flags.map((flag) => `--${flag}`);
}

/** On --resume the checkpoint's config wins (it fixes the results); only --steps may change (and
 * with it where a decaying learning rate ends, which is said), and flags given for other settings
 * are named as ignored. */
export function effectiveConfig(a: JobArgs, given: (flag: string) => boolean = (f) => flagGiven(f)): TrainConfig {
  const fromFlags = trainConfigFromArgs(a);
  const root = a['checkpoint-dir'];
  if (!a.resume || !fs.existsSync(root) || fs.readdirSync(root).length === 0) return a['init-from'] === undefined ? fromFlags : initFromConfig(a['init-from'], fromFlags, given);
  const saved = readCheckpointConfig(resolveCheckpointDir(root));
  const ignored = ignoredOnResume(saved, fromFlags, given);
  if (given('init-from')) ignored.push('--init-from');
  if (ignored.length > 0) log(`note: --resume keeps the checkpoint's settings; ignored: ${ignored.join(', ')} (only --steps may change)`);
  if (saved.lrSchedule !== 'constant' && saved.steps !== fromFlags.steps) {
    log(`note: --steps ${fromFlags.steps} differs from the checkpoint's ${saved.steps}: the ${saved.lrSchedule} learning rate now decays to 0 at step ${fromFlags.steps}`);
  }
  return { ...saved, steps: fromFlags.steps };
}

/** A fine-tuning run: the file's architecture (model flags given that disagree with it are an
 * error, not silently dropped), the other settings from the flags. */
export function initFromConfig(file: string, fromFlags: TrainConfig, given: (flag: string) => boolean): TrainConfig {
  const { from, model } = describeInitFile(file);
  const fields = [...new Set([...Object.keys(model), ...Object.keys(fromFlags.model)])]; // --classes on an unconditional file too
  const conflicts = fields.filter((k) => given(flagOf(k)) && JSON.stringify((model as unknown as Record<string, unknown>)[k]) !== JSON.stringify((fromFlags.model as unknown as Record<string, unknown>)[k]));
  if (given('preset') && JSON.stringify(model) !== JSON.stringify(fromFlags.model) && conflicts.length === 0) conflicts.push('preset');
  if (conflicts.length > 0) {
    throw new UsageError(`--init-from ${file}: the file fixes the model; it disagrees with ${conflicts.map((k) => `--${flagOf(k)}`).join(', ')} (its U-Net: ${JSON.stringify(model)})`);
  }
  return validateTrainConfig({ ...fromFlags, model, initFrom: from });
}

export interface JobHooks {
  /** Runs after the coordinator has its state and before the first step (e.g. wait for workers). */
  beforeTraining?: (c: Coordinator) => Promise<void>;
  workers: () => number;
  telemetry: TrainingTelemetry;
  /** This process's tfjs backend (the sample grids'). */
  backend: string;
}

/** `base`: effectiveConfig's; a conditional run adds its data's class names to it. */
export async function runTrainingJob(a: JobArgs, base: TrainConfig, executor: UnitExecutor, hooks: JobHooks): Promise<void> {
  checkOutputFlags(a, base.timesteps);
  const caveat = guidanceCaveat(base, a['sample-guidance']);
  if (caveat !== undefined && a['sample-n'] > 0) log(caveat);
  const updateThreads = resolveUpdateThreads(a['update-threads'], parameterCount(base.model), availableCores());
  const { telemetry } = hooks;
  const dataset = await loadDataset(base.data, { size: base.model.imageSize, channels: base.model.imageChannels, mode: base.imageFit }, { threads: availableCores(), log });
  log(`data: ${describeDataset(dataset)}`);
  // Kept in the checkpoints, for `ddpm sample --class NAME`.
  const config = classCount(base.model) > 0 && base.classNames === undefined && dataset.classNames !== undefined ? { ...base, classNames: dataset.classNames } : base;
  log(`model: ${parameterCount(config.model)} parameters; batch ${config.batchSize} in units of ${config.unitSize}; ${config.steps} steps`);
  const model = new UNetModel(config.model);
  const schedule = makeSchedule(config.schedule, config.timesteps);
  const sampler = new PeriodicSampler({
    model, schedule, backend: hooks.backend, prediction: config.prediction, checkpointDir: a['checkpoint-dir'], every: a['sample-every'], n: a['sample-n'], sampler: a['sample-sampler'] as SamplerName, steps: a['sample-steps'],
    guidance: a['sample-guidance'], log,
    onWritten: (file, step) => { telemetry.onSample(file, step); log(`samples: ${file}`); },
  });
  const previous = a.resume ? newestSampleGrid(a['checkpoint-dir']) : undefined;
  if (previous) telemetry.onSample(previous.file, previous.step);
  const store = new CheckpointStore(a['checkpoint-dir'], model.specs, log);
  const reporter = new ProgressReporter({ totalSteps: config.steps, format: a['log-format'] as LogFormat, everySeconds: a['log-every'], log: (l) => process.stdout.write(`${l}\n`) });
  const coordinator = new Coordinator({
    config, dataset, executor, checkpoints: { store, every: a['checkpoint-every'], keep: a.keep }, resume: a.resume, log, updateThreads,
    onStep: (r) => {
      reporter.onStep(r, hooks.workers());
      telemetry.onStep(r);
      sampler.maybeStart(r.step, coordinator.optimizerState.ema);
    },
    onCheckpoint: (_dir, seconds) => telemetry.onCheckpoint(seconds),
  });
  let interrupted = false;
  const unsubscribe = onStopSignals(() => { interrupted = true; telemetry.markStopping(); coordinator.requestStop(); }, log);
  try {
    await coordinator.start();
    telemetry.setStep(coordinator.step);
    await hooks.beforeTraining?.(coordinator);
    reporter.begin(coordinator.step);
    await coordinator.run();
    reporter.finish(coordinator.step);
  } finally {
    unsubscribe();
    telemetry.markStopping();
    await sampler.stop();
    await coordinator.stop();
  }
  log(`checkpoint: ${path.join(a['checkpoint-dir'], 'latest')} (step ${coordinator.step})`);
  if (a['sample-n'] > 0 && !interrupted) {
    const out = a.out ?? path.join(a['checkpoint-dir'], 'samples.png');
    const images = await generateImages(model, coordinator.optimizerState.ema, schedule, {
      n: a['sample-n'], seed: 1, sampler: a['sample-sampler'] as SamplerName, steps: a['sample-steps'], eta: 0, prediction: config.prediction,
      labels: gridLabels(config.model, a['sample-n']), guidance: a['sample-guidance'],
    });
    writeOutputFile(a.out === undefined ? 'checkpoint-dir' : 'out', out, encodeGrid(images, a['sample-n'], config.model));
    telemetry.onSample(out, coordinator.step);
    log(`samples: ${out} (${a['sample-n']} images, EMA weights, ${samplerLabel(a['sample-sampler'])} ${a['sample-steps']} steps)`);
  }
}
