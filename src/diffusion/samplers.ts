/**
 * Reverse-process samplers over a Denoiser: DDPM ancestral sampling (Ho et al. 2020, Alg. 2) with
 * the fixed-small (beta~_t) or fixed-large (beta_t) variance, DDIM (Song et al. 2021, Eq. 12), and
 * DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2), a second-order multistep solver of
 * the same probability-flow ODE that DDIM (eta 0) solves to first order. All go through the
 * predicted x_0, so any PredictionTarget works with each.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DiffusionSchedule, allTimesteps, ddimTimesteps, logSnrTimesteps } from '../schedule';
import { Denoiser, PREDICTION_TARGETS, PredictionTarget } from './types';

export const SAMPLER_NAMES = ['ddpm', 'ddim', 'dpm-solver++'] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];

export function isSamplerName(name: string): name is SamplerName {
  return (SAMPLER_NAMES as readonly string[]).includes(name);
}
export const VARIANCE_NAMES = ['fixed-small', 'fixed-large'] as const;
export type VarianceName = (typeof VARIANCE_NAMES)[number];

export interface SampleOptions {
  sampler: SamplerName;
  /** What the model predicts (the training run's `prediction`). */
  prediction: PredictionTarget;
  /** DDIM and DPM-Solver++: number of denoising steps (<= T). */
  steps?: number;
  /** DDIM only: 0 is deterministic, 1 matches DDPM's posterior variance. */
  eta?: number;
  /** DDPM only. */
  variance?: VarianceName;
  /** Draws standard normal noise of a given shape; seeded by the caller for reproducibility. */
  noise: (shape: [number, number, number, number]) => tf.Tensor4D;
  /** Called after each step with (done, total). */
  onStep?: (done: number, total: number) => void;
}

const filled = (n: number, t: number) => new Int32Array(n).fill(t);

/** x_0 from the network's output at step t, clipped to [-1, 1]. */
function predictX0(s: DiffusionSchedule, xt: tf.Tensor4D, out: tf.Tensor4D, t: number, target: PredictionTarget): tf.Tensor4D {
  let x0: tf.Tensor4D;
  switch (target) {
    case 'eps':
      // Eq. 15 rearranged: x0 = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps.
      x0 = tf.sub(tf.mul(xt, s.sqrtRecipAlphasCumprod[t]), tf.mul(out, s.sqrtRecipm1AlphasCumprod[t]));
      break;
    case 'v':
      // Salimans & Ho 2022, App. D: x0 = alpha_t x_t - sigma_t v.
      x0 = tf.sub(tf.mul(xt, s.sqrtAlphasCumprod[t]), tf.mul(out, s.sqrtOneMinusAlphasCumprod[t]));
      break;
    case 'x0':
      x0 = out;
      break;
    default: {
      const never: never = target;
      throw new RangeError(`unknown prediction target "${String(never)}" (allowed: ${PREDICTION_TARGETS.join(', ')})`);
    }
  }
  return tf.clipByValue(x0, -1, 1) as tf.Tensor4D;
}

function ddpmStep(s: DiffusionSchedule, model: Denoiser, xt: tf.Tensor4D, t: number, variance: VarianceName, opts: SampleOptions): tf.Tensor4D {
  const n = xt.shape[0];
  const x0 = predictX0(s, xt, model(xt, filled(n, t)), t, opts.prediction);
  // Posterior mean mu~_t(x_t, x_0), Eq. 7.
  const mean = tf.add(tf.mul(x0, s.posteriorMeanCoef1[t]), tf.mul(xt, s.posteriorMeanCoef2[t])) as tf.Tensor4D;
  if (t === 0) return mean;
  // Sec. 3.2: sigma_t^2 = beta~_t (fixed-small) or beta_t (fixed-large); no noise is added at t = 0.
  const logVar = variance === 'fixed-small' ? s.posteriorLogVarianceClipped[t] : Math.log(s.betas[t]);
  return tf.add(mean, tf.mul(opts.noise(xt.shape), Math.exp(0.5 * logVar))) as tf.Tensor4D;
}

function ddimStep(s: DiffusionSchedule, model: Denoiser, xt: tf.Tensor4D, t: number, tPrev: number, eta: number, opts: SampleOptions): tf.Tensor4D {
  const n = xt.shape[0];
  const x0 = predictX0(s, xt, model(xt, filled(n, t)), t, opts.prediction);
  const abar = s.alphasCumprod[t];
  const abarPrev = tPrev >= 0 ? s.alphasCumprod[tPrev] : 1;
  // Eq. 16: sigma_t(eta) = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev).
  const sigma = eta * Math.sqrt((1 - abarPrev) / (1 - abar)) * Math.sqrt(1 - abar / abarPrev);
  // eps from the clipped x0 (whatever the network predicts), so the direction term agrees with it.
  const epsUsed = tf.div(tf.sub(xt, tf.mul(x0, Math.sqrt(abar))), Math.sqrt(1 - abar));
  // Eq. 12: "predicted x0" + "direction pointing to x_t" + random noise.
  const dir = tf.mul(epsUsed, Math.sqrt(Math.max(1 - abarPrev - sigma * sigma, 0))) as tf.Tensor4D;
  let next = tf.add(tf.mul(x0, Math.sqrt(abarPrev)), dir) as tf.Tensor4D;
  if (sigma > 0) next = tf.add(next, tf.mul(opts.noise(xt.shape), sigma)) as tf.Tensor4D;
  return next;
}

/**
 * DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), in the log-SNR lambda_t = log(alpha_t / sigma_t):
 *   x_{t_i} = (sigma_i / sigma_{i-1}) x_{t_{i-1}} - alpha_i (e^{-h_i} - 1) D_i,  h_i = lambda_i - lambda_{i-1},
 *   D_i = (1 + 1/(2 r_i)) x0_{i-1} - 1/(2 r_i) x0_{i-2},  r_i = h_{i-1} / h_i,
 * the second-order extrapolation of the network's x0 predictions. The first step has no earlier
 * prediction and takes D = x0 (DDIM's step, eta 0); so does the last, to sigma = 0 (h infinite),
 * where the step is x0 itself (the "lower order final" of diffusers' scheduler).
 */
class DpmSolverPlusPlus {
  private prevX0: tf.Tensor4D | null = null;
  private prevH = 0;

  constructor(private readonly s: DiffusionSchedule) {}

  private alpha(t: number): number {
    return t >= 0 ? this.s.sqrtAlphasCumprod[t] : 1;
  }

  private sigma(t: number): number {
    return t >= 0 ? this.s.sqrtOneMinusAlphasCumprod[t] : 0;
  }

  /** Call inside tf.tidy: the x0 prediction it keeps for the next step survives it. */
  step(model: Denoiser, xt: tf.Tensor4D, t: number, tPrev: number, opts: SampleOptions): tf.Tensor4D {
    const x0 = predictX0(this.s, xt, model(xt, filled(xt.shape[0], t)), t, opts.prediction);
    const previous = this.prevX0;
    this.prevX0 = null;
    if (tPrev < 0) {
      previous?.dispose();
      return x0;
    }
    const lambda = (u: number) => Math.log(this.alpha(u) / this.sigma(u));
    const h = lambda(tPrev) - lambda(t);
    let d = x0;
    if (previous) {
      const r = this.prevH / h;
      d = tf.sub(tf.mul(x0, 1 + 1 / (2 * r)), tf.mul(previous, 1 / (2 * r)));
      previous.dispose();
    }
    this.prevX0 = tf.keep(x0);
    this.prevH = h;
    // -alpha (e^{-h} - 1) = -alpha expm1(-h), exact for small h.
    return tf.add(tf.mul(xt, this.sigma(tPrev) / this.sigma(t)), tf.mul(d, -this.alpha(tPrev) * Math.expm1(-h))) as tf.Tensor4D;
  }

  dispose(): void {
    this.prevX0?.dispose();
    this.prevX0 = null;
  }
}

function samplingTimesteps(schedule: DiffusionSchedule, opts: SampleOptions): number[] {
  const steps = opts.steps ?? 50;
  switch (opts.sampler) {
    case 'ddpm':
      return allTimesteps(schedule.timesteps);
    case 'ddim':
      return ddimTimesteps(schedule.timesteps, steps);
    case 'dpm-solver++':
      return logSnrTimesteps(schedule.alphasCumprod, steps);
  }
}

/** Runs the reverse process from x_T ~ N(0, I) (drawn with opts.noise) and returns x_0 in [-1, 1]. */
export function sample(schedule: DiffusionSchedule, model: Denoiser, shape: [number, number, number, number], opts: SampleOptions): tf.Tensor4D {
  const eta = opts.eta ?? 0;
  if (!(eta >= 0 && eta <= 1)) throw new RangeError(`eta must be in [0, 1], got ${eta}`);
  const seq = samplingTimesteps(schedule, opts);
  const solver = opts.sampler === 'dpm-solver++' ? new DpmSolverPlusPlus(schedule) : null;
  let x = opts.noise(shape);
  try {
    seq.forEach((t, i) => {
      const tPrev = i + 1 < seq.length ? seq[i + 1] : -1;
      const next = tf.tidy(() => {
        switch (opts.sampler) {
          case 'ddpm':
            return ddpmStep(schedule, model, x, t, opts.variance ?? 'fixed-small', opts);
          case 'ddim':
            return ddimStep(schedule, model, x, t, tPrev, eta, opts);
          case 'dpm-solver++':
            return solver!.step(model, x, t, tPrev, opts);
          default: {
            const never: never = opts.sampler;
            throw new RangeError(`unknown sampler "${String(never)}" (allowed: ${SAMPLER_NAMES.join(', ')})`);
          }
        }
      });
      x.dispose();
      x = next;
      opts.onStep?.(i + 1, seq.length);
    });
  } finally {
    solver?.dispose();
  }
  const out = tf.tidy(() => tf.clipByValue(x, -1, 1));
  x.dispose();
  return out;
}
