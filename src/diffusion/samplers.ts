/**
 * Reverse-process samplers over a Denoiser: DDPM ancestral sampling (Ho et al. 2020, Alg. 2) with
 * the fixed-small (beta~_t) or fixed-large (beta_t) variance, and DDIM (Song et al. 2021, Eq. 12).
 * Both go through the predicted x_0, so any PredictionTarget works with either.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DiffusionSchedule, allTimesteps, ddimTimesteps } from '../schedule';
import { Denoiser, PREDICTION_TARGETS, PredictionTarget } from './types';

export const SAMPLER_NAMES = ['ddpm', 'ddim'] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];
export const VARIANCE_NAMES = ['fixed-small', 'fixed-large'] as const;
export type VarianceName = (typeof VARIANCE_NAMES)[number];

export interface SampleOptions {
  sampler: SamplerName;
  /** What the model predicts (the training run's `prediction`). */
  prediction: PredictionTarget;
  /** DDIM only: number of denoising steps (<= T). */
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

/** Runs the reverse process from x_T ~ N(0, I) (drawn with opts.noise) and returns x_0 in [-1, 1]. */
export function sample(schedule: DiffusionSchedule, model: Denoiser, shape: [number, number, number, number], opts: SampleOptions): tf.Tensor4D {
  const eta = opts.eta ?? 0;
  if (!(eta >= 0 && eta <= 1)) throw new RangeError(`eta must be in [0, 1], got ${eta}`);
  const seq = opts.sampler === 'ddim' ? ddimTimesteps(schedule.timesteps, opts.steps ?? 50) : allTimesteps(schedule.timesteps);
  let x = opts.noise(shape);
  seq.forEach((t, i) => {
    const next = tf.tidy(() => {
      switch (opts.sampler) {
        case 'ddpm':
          return ddpmStep(schedule, model, x, t, opts.variance ?? 'fixed-small', opts);
        case 'ddim':
          return ddimStep(schedule, model, x, t, i + 1 < seq.length ? seq[i + 1] : -1, eta, opts);
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
  const out = tf.tidy(() => tf.clipByValue(x, -1, 1));
  x.dispose();
  return out;
}
