/** The forward (noising) process and the training objective (Ho et al. 2020). */
import * as tf from '@tensorflow/tfjs-core';
import { DiffusionSchedule, extract } from '../schedule';
import { Denoiser, PredictionTarget } from './types';

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
        tf.mul(perExample(extract(schedule.sqrtAlphasCumprod, timesteps)), noise),
        tf.mul(perExample(extract(schedule.sqrtOneMinusAlphasCumprod, timesteps)), x0),
      ));
    default: {
      const never: never = target;
      throw new RangeError(`unknown prediction target "${String(never)}"`);
    }
  }
}

/**
 * Per-example loss: the squared error of the network's prediction, averaged over pixels. For
 * `eps` this is the simplified objective, Eq. 14: || eps - eps_theta(x_t, t) ||^2.
 * Returns a vector of length N; the trainer sums it per unit and divides by the global batch.
 */
export function perExampleLoss(schedule: DiffusionSchedule, model: Denoiser, x0: tf.Tensor4D, timesteps: Int32Array, noise: tf.Tensor4D, target: PredictionTarget): tf.Tensor1D {
  const xt = qSample(schedule, x0, timesteps, noise);
  const predicted = model(xt, timesteps);
  return tf.mean(tf.squaredDifference(predictionTarget(schedule, target, x0, timesteps, noise), predicted), [1, 2, 3]);
}
