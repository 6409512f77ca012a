/** The forward (noising) process and the training objective (Ho et al. 2020). */
import * as tf from '@tensorflow/tfjs-core';
import { DiffusionSchedule, extract } from '../schedule';
import { Denoiser } from './types';

function perExample(values: Float32Array): tf.Tensor4D {
  return tf.tensor4d(values, [values.length, 1, 1, 1]);
}

/** Eq. 4 in closed form: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. */
export function qSample(schedule: DiffusionSchedule, x0: tf.Tensor4D, timesteps: Int32Array, noise: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.add(
    tf.mul(perExample(extract(schedule.sqrtAlphasCumprod, timesteps)), x0),
    tf.mul(perExample(extract(schedule.sqrtOneMinusAlphasCumprod, timesteps)), noise),
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
 * Per-example simplified loss, Eq. 14: || eps - eps_theta(x_t, t) ||^2 averaged over pixels.
 * Returns a vector of length N; the trainer sums it per unit and divides by the global batch.
 */
export function perExampleLoss(schedule: DiffusionSchedule, model: Denoiser, x0: tf.Tensor4D, timesteps: Int32Array, noise: tf.Tensor4D): tf.Tensor1D {
  const xt = qSample(schedule, x0, timesteps, noise);
  const predicted = model(xt, timesteps);
  return tf.mean(tf.squaredDifference(noise, predicted), [1, 2, 3]);
}
