/**
 * The coordinator's update, on host Float32Arrays so it is identical whatever backend the workers
 * use: global-norm clipping, Adam (Kingma & Ba 2015, Alg. 1) with decoupled weight decay (AdamW,
 * Loshchilov & Hutter 2019, Alg. 2), a learning rate with linear warm-up then constant, linear or
 * cosine decay, and an EMA of the weights. Plain loops: this is the optimizer, not the wire.
 */

/** What the learning rate does after warm-up: stays, or decays to 0 at the last step linearly or
 * along a half cosine (SGDR, Loshchilov & Hutter 2017, Eq. 5 without restarts), as the
 * `linear` and `cosine` schedulers of diffusers' training scripts. */
export const LR_SCHEDULES = ['constant', 'linear', 'cosine'] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];

export function isLrSchedule(v: unknown): v is LrSchedule {
  return typeof v === 'string' && (LR_SCHEDULES as readonly string[]).includes(v);
}

export interface OptimizerConfig {
  lr: number;
  warmupSteps: number;
  lrSchedule: LrSchedule;
  /** The run's total steps: where a decaying schedule reaches 0. */
  steps: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEps: number;
  /** Decoupled weight decay: each step multiplies every parameter by 1 - lr_t * adamWeightDecay
   * (PyTorch's AdamW; 0: plain Adam). */
  adamWeightDecay: number;
  gradClip: number;
  emaDecay: number;
}

export interface OptimizerState {
  params: Float32Array;
  ema: Float32Array;
  adamM: Float32Array;
  adamV: Float32Array;
  /** Updates applied so far (Adam's t before this update). */
  step: number;
}

/** The learning rate of the update after `step` updates: lr (step + 1) / warmupSteps during warm-up,
 * then lr times the schedule's factor of progress = (step - warmupSteps) / (steps - warmupSteps):
 * 1, 1 - progress, or (1 + cos(pi progress)) / 2. */
export function learningRate(cfg: OptimizerConfig, step: number): number {
  const { lr, warmupSteps } = cfg;
  if (step < warmupSteps) return lr * ((step + 1) / warmupSteps);
  if (cfg.lrSchedule === 'constant') return lr;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, cfg.steps - warmupSteps));
  return lr * (cfg.lrSchedule === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** EMA decay with warm-up, as TensorFlow's ExponentialMovingAverage(num_updates): min(d, (1+n)/(10+n)). */
export function emaDecay(cfg: OptimizerConfig, step: number): number {
  return Math.min(cfg.emaDecay, (1 + step) / (10 + step));
}

/** Elements per partial sum of the gradient norm: the sum of squares is taken block by block,
 * then over the blocks in order, so a pass that computes some blocks elsewhere (the reduction's
 * last add, reduce.ts) or in slices gets the same bits. */
export const NORM_BLOCK = 65536;

/** The Euclidean norm, float64 sums of squares per NORM_BLOCK elements, then over the blocks. */
export function globalNorm(grad: Float32Array): number {
  let total = 0;
  for (let lo = 0; lo < grad.length; lo += NORM_BLOCK) {
    const hi = Math.min(grad.length, lo + NORM_BLOCK);
    let sq = 0;
    for (let i = lo; i < hi; i++) sq += grad[i] * grad[i];
    total += sq;
  }
  return Math.sqrt(total);
}

export interface UpdateStats {
  gradNorm: number;
  learningRate: number;
}

/** The per-step constants of an update: everything but the per-element arithmetic. */
export interface UpdateScalars {
  clip: number;
  lr: number;
  b1: number;
  b2: number;
  /** Adam's bias corrections 1 - b1^t and 1 - b2^t. */
  c1: number;
  c2: number;
  eps: number;
  /** What each parameter is multiplied by before Adam's step: 1 - lr_t * weight decay. */
  keep: number;
  decay: number;
}

export function updateScalars(cfg: OptimizerConfig, step: number, gradNorm: number): UpdateScalars {
  const t = step + 1;
  const lr = learningRate(cfg, step);
  return {
    clip: gradNorm > cfg.gradClip ? cfg.gradClip / gradNorm : 1, lr,
    b1: cfg.adamBeta1, b2: cfg.adamBeta2, c1: 1 - Math.pow(cfg.adamBeta1, t), c2: 1 - Math.pow(cfg.adamBeta2, t),
    eps: cfg.adamEps, keep: 1 - lr * cfg.adamWeightDecay, decay: emaDecay(cfg, step),
  };
}

export type UpdateArrays = Pick<OptimizerState, 'params' | 'ema' | 'adamM' | 'adamV'>;

/** Clipping, AdamW (Alg. 2: the decay before the moment step, as PyTorch's AdamW; keep = 1 without
 * it, and p * 1 is p, so plain Adam's bits) and the EMA for elements [lo, hi): element-wise, so
 * splitting the range over threads (updateThreads.ts) gives the same bits as one pass. */
export function updateRange(s: UpdateArrays, grad: Float32Array, k: UpdateScalars, lo: number, hi: number): void {
  const { params, ema, adamM, adamV } = s;
  const { clip, lr, b1, b2, c1, c2, eps, keep, decay } = k;
  for (let i = lo; i < hi; i++) {
    const g = grad[i] * clip;
    const m = (adamM[i] = b1 * adamM[i] + (1 - b1) * g);
    const v = (adamV[i] = b2 * adamV[i] + (1 - b2) * g * g);
    const p = (params[i] = params[i] * keep - (lr * (m / c1)) / (Math.sqrt(v / c2) + eps));
    ema[i] = decay * ema[i] + (1 - decay) * p;
  }
}

/** One update from the mean gradient. `gradNorm`: its globalNorm, if already known (the
 * reduction computes it in its last pass). `pass`: what runs updateRange over every element
 * with the step's scalars (this thread by default; updateThreads.ts splits it over threads). */
export function applyUpdate(cfg: OptimizerConfig, s: OptimizerState, grad: Float32Array, gradNorm = globalNorm(grad),
  pass = (k: UpdateScalars) => updateRange(s, grad, k, 0, s.params.length)): UpdateStats {
  const k = updateScalars(cfg, s.step, gradNorm);
  pass(k);
  s.step += 1;
  return { gradNorm, learningRate: k.lr };
}

export function initialOptimizerState(params: Float32Array): OptimizerState {
  return { params, ema: params.slice(), adamM: new Float32Array(params.length), adamV: new Float32Array(params.length), step: 0 };
}
