/** Option groups shared by commands, and their translation into configs. */
import * as fs from 'fs';
import * as path from 'path';
import type { Argv } from 'yargs';
import { PRESET_NAMES, UNetConfig, presetConfig, validateConfig } from '../model/config';
import { SCHEDULE_NAMES, ScheduleName } from '../schedule';
import { PREDICTION_TARGETS, PredictionTarget } from '../diffusion/types';
import { SAMPLER_NAMES } from '../diffusion/samplers';
import { BACKEND_NAMES, BackendName } from '../backend/backend';
import { TRAIN_DEFAULTS, TrainConfig, validateTrainConfig } from '../training/config';
import { LR_SCHEDULES, LrSchedule } from '../training/optimizer';
import { IMAGE_FITS, ImageFit } from '../data/fit';
import { DEFAULT_GUIDANCE } from '../training/generate';
import { UsageError } from './errors';
import { writeFailure, writeFileAtomic } from '../util/fsync';

export function parseIntList(value: string, flag: string): number[] {
  if (value.trim() === '') return [];
  return value.split(',').map((part) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n)) throw new UsageError(`--${flag}: "${part}" is not an integer (expected a comma-separated list like 1,2,2)`);
    return n;
  });
}

/** `--flag` must be a whole number of at least `min` (1: "a positive integer", 0: "a
 * non-negative integer"); `note` says what a value means, e.g. "0: no grid". */
export function checkCount(value: number, flag: string, min: 0 | 1, note?: string): void {
  if (Number.isInteger(value) && value >= min) return;
  throw new UsageError(`--${flag} must be a ${min === 1 ? 'positive' : 'non-negative'} integer${note ? ` (${note})` : ''}, got ${value}`);
}

/** The command line's flags, as typed (`--lr 1e-3`, `--lr=1e-3`): whether the user gave `flag`. */
export function flagGiven(flag: string, argv = process.argv): boolean {
  return argv.some((arg) => arg === `--${flag}` || arg.startsWith(`--${flag}=`));
}

/** A classifier-free guidance scale (--guidance, --sample-guidance): any finite number >= 0. */
export function checkGuidance(value: number, flag: string): void {
  if (!(Number.isFinite(value) && value >= 0)) throw new UsageError(`--${flag} must be a finite number >= 0 (1: no guidance), got ${value}`);
}

/** A ZeroMQ endpoint this project's sockets use: tcp://HOST:PORT (HOST a name, an IPv4 address,
 * [IPv6] or *), or ipc://PATH. libzmq would throw on some malformed ones and accept others that
 * never connect (tcp://:5555), so the syntax is checked before any socket exists. */
export function checkEndpoint(value: string, flag: string): void {
  const tcp = /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[^\s/:[\]]+):(\d+)$/.exec(value);
  const port = tcp ? Number(tcp[2]) : 0;
  if (tcp ? port >= 1 && port <= 65535 : /^ipc:\/\/\S+$/.test(value)) return;
  throw new UsageError(`--${flag} ${value}: not a ZeroMQ address (expected tcp://HOST:PORT with a port in 1-65535, or ipc://PATH)`);
}

/** An output file's directory must exist before the work that ends in writing it starts. */
export function checkOutputDir(file: string, flag: string): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--${flag} ${file}: no such directory ${dir}`);
}

/** Writes an output file atomically; a full or read-only disk, or a permission, is the user's to
 * fix: one line naming the flag and the file. */
export function writeOutputFile(flag: string, file: string, data: string | Uint8Array): void {
  try {
    writeFileAtomic(file, data);
  } catch (err) {
    const why = writeFailure(err);
    if (why === undefined) throw err;
    throw new UsageError(`--${flag} ${file}: cannot write: ${why}`);
  }
}

/** Denoising steps of a sampler over a run's T training timesteps (--steps, --sample-steps). */
export function checkSamplingSteps(steps: number, timesteps: number, flag: string): void {
  if (!(Number.isInteger(steps) && steps >= 1 && steps <= timesteps)) throw new UsageError(`--${flag} must be an integer in [1, ${timesteps}] (the run's timesteps), got ${steps}`);
}

export function withModelOptions<T>(y: Argv<T>, defaultPreset: string) {
  return y
    .option('preset', { type: 'string', choices: PRESET_NAMES, default: defaultPreset, describe: 'model preset; the flags below override it' })
    .option('channels', { type: 'number', describe: 'base channel count (ch)' })
    .option('channel-mult', { type: 'string', describe: 'channel multiplier per level, e.g. 1,2,2,2' })
    .option('res-blocks', { type: 'number', describe: 'residual blocks per level' })
    .option('attention-resolutions', { type: 'string', describe: 'sizes with self-attention, e.g. 16 ("" for none)' })
    .option('dropout', { type: 'number', describe: 'dropout rate in residual blocks' })
    .option('image-size', { type: 'number', describe: 'image height and width' })
    .option('image-channels', { type: 'number', describe: 'image channels (1 or 3)' })
    .option('norm-groups', { type: 'number', describe: 'GroupNorm groups' })
    .option('classes', { type: 'number', describe: 'class-conditional with this many classes (the data\'s labels, e.g. 10 for mnist); 0: unconditional' });
}

export interface ModelArgs {
  preset: string;
  channels?: number;
  'channel-mult'?: string;
  'res-blocks'?: number;
  'attention-resolutions'?: string;
  dropout?: number;
  'image-size'?: number;
  'image-channels'?: number;
  'norm-groups'?: number;
  classes?: number;
}

export function modelConfigFromArgs(a: ModelArgs): UNetConfig {
  const c = presetConfig(a.preset);
  if (a.channels !== undefined) c.channels = a.channels;
  if (a['channel-mult'] !== undefined) c.channelMult = parseIntList(a['channel-mult'], 'channel-mult');
  if (a['res-blocks'] !== undefined) c.resBlocks = a['res-blocks'];
  if (a['attention-resolutions'] !== undefined) c.attentionResolutions = parseIntList(a['attention-resolutions'], 'attention-resolutions');
  if (a.dropout !== undefined) c.dropout = a.dropout;
  if (a['image-size'] !== undefined) c.imageSize = a['image-size'];
  if (a['image-channels'] !== undefined) c.imageChannels = a['image-channels'];
  if (a['norm-groups'] !== undefined) c.normGroups = a['norm-groups'];
  // 0 leaves the field out: an unconditional config reads as it did before conditioning existed.
  if (a.classes !== undefined && a.classes !== 0) c.classes = a.classes;
  return validateConfig(c);
}

export function withScheduleOptions<T>(y: Argv<T>) {
  return y
    .option('schedule', { type: 'string', choices: SCHEDULE_NAMES, default: TRAIN_DEFAULTS.schedule, describe: 'beta schedule' })
    .option('timesteps', { type: 'number', default: TRAIN_DEFAULTS.timesteps, describe: 'diffusion steps T' });
}

export function withObjectiveOptions<T>(y: Argv<T>) {
  return y
    .option('prediction', {
      type: 'string', choices: PREDICTION_TARGETS, default: TRAIN_DEFAULTS.prediction,
      describe: 'what the network predicts: eps (the noise, DDPM), v (sqrt(abar) eps - sqrt(1-abar) x0) or x0 (the clean image)',
    })
    .option('snr-gamma', { type: 'number', default: TRAIN_DEFAULTS.snrGamma, describe: 'Min-SNR-gamma loss weighting (Hang et al. 2023; 5 is usual); 0: none' })
    .option('class-dropout', { type: 'number', default: TRAIN_DEFAULTS.classDropout, describe: 'with --classes: how often a label is replaced by "no class", for classifier-free guidance' });
}

export function withBackendOption<T>(y: Argv<T>) {
  return y.option('backend', { type: 'string', choices: BACKEND_NAMES, default: 'auto' as BackendName, describe: 'tfjs backend' });
}

const d = TRAIN_DEFAULTS;

export function withTrainOptions<T>(y: Argv<T>) {
  return withBackendOption(withObjectiveOptions(withScheduleOptions(withModelOptions(y, 'mnist-fast'))))
    .option('data', { type: 'string', default: d.data, describe: 'mnist | idx:PATH | cifar10:DIR | images:DIR | npz:FILE' })
    .option('image-fit', { type: 'string', choices: IMAGE_FITS, default: d.imageFit, describe: 'non-square images: crop (the middle square, as torchvision\'s CenterCrop) or stretch; then resized to --image-size' })
    .option('flip', { type: 'boolean', default: d.flip, describe: 'random horizontal flips' })
    .option('batch-size', { type: 'number', default: d.batchSize, describe: 'global batch size' })
    .option('unit-size', { type: 'number', default: d.unitSize, describe: 'examples per work unit (micro-batch)' })
    .option('steps', { type: 'number', default: d.steps, describe: 'optimizer steps to train (total, counting resumed ones)' })
    .option('seed', { type: 'number', default: d.seed, describe: 'run seed: initialisation, batches, noise' })
    .option('lr', { type: 'number', default: d.lr, describe: 'Adam learning rate' })
    .option('warmup-steps', { type: 'number', default: d.warmupSteps, describe: 'linear learning-rate warm-up' })
    .option('lr-schedule', {
      type: 'string', choices: LR_SCHEDULES, default: d.lrSchedule,
      describe: 'learning rate after warm-up: constant, or decaying to 0 at --steps, linearly or along a half cosine',
    })
    .option('adam-beta1', { type: 'number', default: d.adamBeta1 })
    .option('adam-beta2', { type: 'number', default: d.adamBeta2 })
    .option('adam-eps', { type: 'number', default: d.adamEps })
    .option('adam-weight-decay', { type: 'number', default: d.adamWeightDecay, describe: 'decoupled weight decay (AdamW); 0: Adam' })
    .option('grad-clip', { type: 'number', default: d.gradClip, describe: 'global-norm clip of the averaged gradient' })
    .option('ema-decay', { type: 'number', default: d.emaDecay, describe: 'EMA decay (with warm-up)' })
    .option('checkpoint-dir', { type: 'string', default: 'runs/mnist', describe: 'checkpoint directory' })
    .option('checkpoint-every', { type: 'number', default: 500, describe: 'steps between checkpoints (0: only at the end)' })
    .option('keep', { type: 'number', default: 3, describe: 'checkpoints kept' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue from the latest checkpoint in --checkpoint-dir' })
    .option('init-from', { type: 'string', describe: 'start from the weights in this ddpm export file (fine-tuning: its architecture, a new run at step 0)' })
    .option('log-format', { type: 'string', choices: ['text', 'json'] as const, default: 'text' as const, describe: 'progress line format' })
    .option('log-every', { type: 'number', default: 5, describe: 'seconds between progress lines' })
    .option('sample-n', { type: 'number', default: 64, describe: 'images in the final sample grid (0: none)' })
    .option('sample-sampler', { type: 'string', choices: SAMPLER_NAMES.filter((name) => name !== 'ddpm'), default: 'ddim', describe: 'sampler of the sample grids (ddim: eta 0; dpm-solver++ needs fewer steps, e.g. 20)' })
    .option('sample-steps', { type: 'number', default: 50, describe: 'denoising steps of the sample grids' })
    .option('sample-guidance', { type: 'number', default: DEFAULT_GUIDANCE, describe: 'with --classes: classifier-free guidance scale of the sample grids (one column per class; 1: no guidance)' })
    .option('out', { type: 'string', describe: 'final sample grid PNG (default CHECKPOINT_DIR/samples.png)' })
    .option('update-threads', { type: 'string', default: 'auto', describe: 'threads for the coordinator\'s passes over the parameters (mean gradient, Adam, EMA); auto: one per core, at most 8, for models of 1M parameters or more, else 1; results do not depend on it' });
}

export interface TrainArgs extends ModelArgs {
  schedule: string;
  timesteps: number;
  prediction: string;
  'snr-gamma': number;
  'class-dropout': number;
  data: string;
  'image-fit': string;
  flip: boolean;
  'batch-size': number;
  'unit-size': number;
  steps: number;
  seed: number;
  lr: number;
  'warmup-steps': number;
  'lr-schedule': string;
  'adam-beta1': number;
  'adam-beta2': number;
  'adam-eps': number;
  'adam-weight-decay': number;
  'grad-clip': number;
  'ema-decay': number;
}

export function trainConfigFromArgs(a: TrainArgs): TrainConfig {
  return validateTrainConfig({
    model: modelConfigFromArgs(a),
    schedule: a.schedule as ScheduleName,
    timesteps: a.timesteps,
    prediction: a.prediction as PredictionTarget,
    snrGamma: a['snr-gamma'],
    classDropout: a['class-dropout'],
    data: a.data,
    imageFit: a['image-fit'] as ImageFit,
    flip: a.flip,
    batchSize: a['batch-size'],
    unitSize: a['unit-size'],
    steps: a.steps,
    seed: a.seed,
    lr: a.lr,
    warmupSteps: a['warmup-steps'],
    lrSchedule: a['lr-schedule'] as LrSchedule,
    adamBeta1: a['adam-beta1'],
    adamBeta2: a['adam-beta2'],
    adamEps: a['adam-eps'],
    adamWeightDecay: a['adam-weight-decay'],
    gradClip: a['grad-clip'],
    emaDecay: a['ema-decay'],
  });
}
