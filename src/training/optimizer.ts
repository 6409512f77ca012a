/**
 * The coordinator's update, on host Float32Arrays so it is identical whatever backend the workers
 * use: global-norm clipping, Adam (Kingma & Ba 2015, Alg. 1) with linear warm-up, and an EMA of the
 * weights. Plain loops: this is the optimizer, not the wire.
 */

export interface OptimizerConfig {
  lr: number;
  warmupSteps: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEps: number;
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

export function learningRate(cfg: OptimizerConfig, step: number): number {
  return cfg.warmupSteps > 0 ? cfg.lr * Math.min(1, (step + 1) / cfg.warmupSteps) : cfg.lr;
}

/** EMA decay with warm-up, as TensorFlow's ExponentialMovingAverage(num_updates): min(d, (1+n)/(10+n)). */
export function emaDecay(cfg: OptimizerConfig, step: number): number {
  return Math.min(cfg.emaDecay, (1 + step) / (10 + step));
}

export function globalNorm(grad: Float32Array): number {
  let sq = 0;
  for (let i = 0; i < grad.length; i++) sq += grad[i] * grad[i];
  return Math.sqrt(sq);
}

export interface UpdateStats {
  gradNorm: number;
  learningRate: number;
}

/** One update from the mean gradient (modified in place by clipping). */
export function applyUpdate(cfg: OptimizerConfig, s: OptimizerState, grad: Float32Array): UpdateStats {
  const gradNorm = globalNorm(grad);
  const clip = gradNorm > cfg.gradClip ? cfg.gradClip / gradNorm : 1;
  const lr = learningRate(cfg, s.step);
  const t = s.step + 1;
  const b1 = cfg.adamBeta1;
  const b2 = cfg.adamBeta2;
  const c1 = 1 - Math.pow(b1, t);
  const c2 = 1 - Math.pow(b2, t);
  const decay = emaDecay(cfg, s.step);
  const { params, ema, adamM, adamV } = s;
  for (let i = 0; i < params.length; i++) {
    const g = grad[i] * clip;
    const m = (adamM[i] = b1 * adamM[i] + (1 - b1) * g);
    const v = (adamV[i] = b2 * adamV[i] + (1 - b2) * g * g);
    const p = (params[i] = params[i] - (lr * (m / c1)) / (Math.sqrt(v / c2) + cfg.adamEps));
    ema[i] = decay * ema[i] + (1 - decay) * p;
  }
  s.step = t;
  return { gradNorm, learningRate: lr };
}

export function initialOptimizerState(params: Float32Array): OptimizerState {
  return { params, ema: params.slice(), adamM: new Float32Array(params.length), adamV: new Float32Array(params.length), step: 0 };
}
