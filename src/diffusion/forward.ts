/** The forward (noising) process and the training objective (Ho et al. 2020). */
import * as tf from '@tensorflow/tfjs-core';
import { DiffusionSchedule, extract } from '../schedule';
import { Denoiser, Objective, PredictionTarget } from './types';
import { timestepTensor } from '../backend/stepInputs';

/** One value per example, broadcast over its pixels. */
function perExample(values: Float32Array): tf.Tensor4D {
  return tf.tensor4d(values, [values.length, 1, 1, 1]);
}

/** schedule array[t] per example: a timestep tensor (../backend/stepInputs.ts). */
function perTimestep(array: Float64Array, timesteps: ArrayLike<number>): tf.Tensor4D {
  return timestepTensor<tf.Tensor4D>(timesteps, (t) => extract(array, t), [timesteps.length, 1, 1, 1]);
}

/** Eq. 4 in closed form: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. */
export function qSample(schedule: DiffusionSchedule, x0: tf.Tensor4D, timesteps: Int32Array, noise: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.add(
    tf.mul(perTimestep(schedule.sqrtAlphasCumprod, timesteps), x0),
    tf.mul(perTimestep(schedule.sqrtOneMinusAlphasCumprod, timesteps), noise),
  ));
}

/** One step of the chain, Eq. 2: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps. */
export function qStep(schedule: DiffusionSchedule, xPrev: tf.Tensor4D, timesteps: Int32Array, noise: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const betas = extract(schedule.betas, timesteps);
    const keep = betas.map((b) => Math.sqrt(1 - b));
    const scale = betas.map((b) => Math.sqrt(b));
    return tf.add(tf.mul(perExample(Float32Array.from(keep)), xPrev), tf.mul(perExample(Float32Array.from(scale)), noise));
  });
}

/**
 * The regression target of `target` for these x_0, eps and timesteps (see PredictionTarget):
 * eps; x_0; or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, App. D).
 */
export function predictionTarget(schedule: DiffusionSchedule, target: PredictionTarget, x0: tf.Tensor4D, timesteps: Int32Array, noise: tf.Tensor4D): tf.Tensor4D {
  switch (target) {
    case 'eps':
      return noise;
    case 'x0':
      return x0;
    case 'v':
      return tf.tidy(() => tf.sub(
        tf.mul(perTimestep(schedule.sqrtAlphasCumprod, timesteps), noise),
        tf.mul(perTimestep(schedule.sqrtOneMinusAlphasCumprod, timesteps), x0),
      ));
    default: {
      const never: never = target;
      throw new RangeError(`unknown prediction target "${String(never)}"`);
    }
  }
}

/**
 * Min-SNR-gamma loss weights (Hang et al. 2023), per example, in float64: min(SNR_t, gamma) for
 * the x0 loss, with SNR_t = abar_t / (1 - abar_t). The eps loss is SNR_t times the x0 loss and the
 * v loss (SNR_t + 1) times, so their weights are min(SNR_t, gamma) / SNR_t and / (SNR_t + 1): every
 * target then weighs a timestep the same, and no low-noise step dominates.
 */
export function minSnrWeights(schedule: DiffusionSchedule, prediction: PredictionTarget, gamma: number, timesteps: ArrayLike<number>): Float64Array {
  return Float64Array.from(timesteps, (t) => {
    const abar = schedule.alphasCumprod[t];
    const snr = abar / (1 - abar);
    const clipped = Math.min(snr, gamma);
    return prediction === 'eps' ? clipped / snr : prediction === 'v' ? clipped / (snr + 1) : clipped;
  });
}

/**
 * Per-example loss: the squared error of the network's prediction, averaged over pixels, times
 * the Min-SNR-gamma weight when objective.snrGamma > 0. For `eps` without weights this is the
 * simplified objective, Eq. 14: || eps - eps_theta(x_t, t) ||^2.
 * Returns a vector of length N; the trainer sums it per unit and divides by the global batch.
 */
export function perExampleLoss(schedule: DiffusionSchedule, model: Denoiser, x0: tf.Tensor4D, timesteps: Int32Array, noise: tf.Tensor4D, objective: Objective): tf.Tensor1D {
  const xt = qSample(schedule, x0, timesteps, noise);
  const predicted = model(xt, timesteps);
  const loss = tf.mean(tf.squaredDifference(predictionTarget(schedule, objective.prediction, x0, timesteps, noise), predicted), [1, 2, 3]) as tf.Tensor1D;
  if (!(objective.snrGamma > 0)) return loss;
  const weights = timestepTensor<tf.Tensor1D>(timesteps, (t) => Float32Array.from(minSnrWeights(schedule, objective.prediction, objective.snrGamma, t)), [timesteps.length]);
  return tf.mul(loss, weights);
}
