/** The full training configuration: one defaults object serves the CLI and the tests. */
import { UNetConfig, presetConfig, validateConfig } from '../model/config';
import { ScheduleName, checkTimesteps } from '../schedule';
import { PREDICTION_TARGETS, PredictionTarget, isPredictionTarget } from '../diffusion/types';
import { LR_SCHEDULES, LrSchedule, isLrSchedule } from './optimizer';
import { IMAGE_FITS, ImageFit, isImageFit } from '../data/fit';

/** Where a fine-tuning run's starting weights came from (`--init-from`, checkpoint/initWeights.ts). */
export interface InitFrom {
  /** Absolute path, as read when the run started. */
  file: string;
  sha256: string;
}

export interface TrainConfig {
  model: UNetConfig;
  /** Starting weights from a file instead of the seed's initialisation; absent: from the seed. */
  initFrom?: InitFrom;
  schedule: ScheduleName;
  timesteps: number;
  /** What the network predicts (src/diffusion/types.ts). */
  prediction: PredictionTarget;
  /** Min-SNR-gamma loss weighting (src/diffusion/forward.ts); 0: none, the paper's objective. */
  snrGamma: number;
  /** A class-conditional model's probability of training an example as "no class" (batchPlan.ts). */
  classDropout: number;
  /** A class-conditional run's class names, where its data names them (`ddpm sample --class NAME`). */
  classNames?: string[];
  data: string;
  /** How non-square images are made square (data/fit.ts). */
  imageFit: ImageFit;
  flip: boolean;
  batchSize: number;
  /** Examples per work unit; units are the grain of distribution and of reduction order. */
  unitSize: number;
  steps: number;
  seed: number;
  lr: number;
  warmupSteps: number;
  /** The learning rate after warm-up (optimizer.ts learningRate). */
  lrSchedule: LrSchedule;
  adamBeta1: number;
  adamBeta2: number;
  adamEps: number;
  /** Decoupled weight decay (AdamW); 0: Adam, the DDPM paper's optimizer. */
  adamWeightDecay: number;
  gradClip: number;
  emaDecay: number;
}

/** Defaults of `ddpm train`: the DDPM paper's Adam settings on the mnist-fast model, with a batch
 * and step count that give recognisable digits in about 8 minutes on 2 CPU cores (one wasm worker
 * process per core; README "Sample quality" has the measurements behind the choice). */
export const TRAIN_DEFAULTS: TrainConfig = {
  model: presetConfig('mnist-fast'),
  schedule: 'linear',
  timesteps: 1000,
  prediction: 'eps',
  snrGamma: 0,
  classDropout: 0.1,
  data: 'mnist',
  imageFit: 'crop',
  flip: false,
  batchSize: 32,
  unitSize: 16,
  steps: 2500,
  seed: 0,
  lr: 2e-4,
  warmupSteps: 100,
  lrSchedule: 'constant',
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEps: 1e-8,
  adamWeightDecay: 0,
  gradClip: 1.0,
  emaDecay: 0.9999,
};

export class InvalidTrainConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTrainConfigError';
  }
}

export function validateTrainConfig(c: TrainConfig): TrainConfig {
  validateConfig(c.model);
  const int = (v: number, name: string, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new InvalidTrainConfigError(`${name} must be an integer >= ${min}, got ${v}`);
  };
  checkTimesteps(c.schedule, c.timesteps);
  checkPrediction(c.prediction);
  checkSnrGamma(c.snrGamma);
  checkLaterFields(c);
  int(c.batchSize, 'batch-size', 1);
  int(c.unitSize, 'unit-size', 1);
  int(c.steps, 'steps', 0);
  int(c.warmupSteps, 'warmup-steps', 0);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) throw new InvalidTrainConfigError(`seed must be an integer in [0, 2^32), got ${c.seed}`);
  const pos = (v: number, name: string) => {
    if (!(v > 0 && Number.isFinite(v))) throw new InvalidTrainConfigError(`${name} must be a positive number, got ${v}`);
  };
  pos(c.lr, 'lr');
  pos(c.adamEps, 'adam-eps');
  pos(c.gradClip, 'grad-clip');
  for (const [v, name] of [[c.adamBeta1, 'adam-beta1'], [c.adamBeta2, 'adam-beta2'], [c.emaDecay, 'ema-decay']] as const) {
    if (!(v >= 0 && v < 1)) throw new InvalidTrainConfigError(`${name} must be in [0, 1), got ${v}`);
  }
  return c;
}

/** A config read back from a checkpoint: fields added since it was written take the value that
 * runs had before them (prediction eps, snrGamma 0, a constant learning rate, no weight decay,
 * stretched images; the class dropout's default, which an unconditional run never reads); a value that is there must be valid. */
export function savedTrainConfig(raw: TrainConfig): TrainConfig {
  const config = {
    ...raw, prediction: raw.prediction ?? 'eps', snrGamma: raw.snrGamma ?? 0,
    lrSchedule: raw.lrSchedule ?? 'constant', adamWeightDecay: raw.adamWeightDecay ?? 0,
    // Runs before --image-fit stretched non-square images.
    imageFit: raw.imageFit ?? 'stretch',
    classDropout: raw.classDropout ?? TRAIN_DEFAULTS.classDropout,
  };
  checkPrediction(config.prediction);
  checkSnrGamma(config.snrGamma);
  checkLaterFields(config);
  return config;
}

/** The fields older checkpoints lack besides the objective's: the schedule, weight decay, class dropout and names, initial weights. */
function checkLaterFields(c: Pick<TrainConfig, 'lrSchedule' | 'adamWeightDecay' | 'classDropout' | 'classNames' | 'initFrom' | 'imageFit'>): void {
  if (!isImageFit(c.imageFit)) throw new InvalidTrainConfigError(`image-fit must be one of ${IMAGE_FITS.join(', ')}, got "${c.imageFit}"`);
  const init = c.initFrom;
  if (init !== undefined && !(typeof init === 'object' && init !== null && typeof init.file === 'string' && /^[0-9a-f]{64}$/.test(String(init.sha256)))) {
    throw new InvalidTrainConfigError('initFrom must be {file, sha256}');
  }
  if (c.classNames !== undefined && !(Array.isArray(c.classNames) && c.classNames.every((n) => typeof n === 'string'))) throw new InvalidTrainConfigError('classNames must be a list of strings');
  if (!(typeof c.classDropout === 'number' && c.classDropout >= 0 && c.classDropout < 1)) throw new InvalidTrainConfigError(`class-dropout must be in [0, 1), got ${c.classDropout}`);
  if (!isLrSchedule(c.lrSchedule)) throw new InvalidTrainConfigError(`lr-schedule must be one of ${LR_SCHEDULES.join(', ')}, got "${c.lrSchedule}"`);
  const wd = c.adamWeightDecay;
  if (!(typeof wd === 'number' && wd >= 0 && Number.isFinite(wd))) throw new InvalidTrainConfigError(`adam-weight-decay must be a finite number >= 0 (0: none), got ${wd}`);
}

function checkSnrGamma(value: number): void {
  if (!(typeof value === 'number' && value >= 0 && Number.isFinite(value))) throw new InvalidTrainConfigError(`snr-gamma must be a finite number >= 0 (0: no weighting), got ${value}`);
}

function checkPrediction(value: string): void {
  if (!isPredictionTarget(value)) throw new InvalidTrainConfigError(`prediction must be one of ${PREDICTION_TARGETS.join(', ')}, got "${value}"`);
}
