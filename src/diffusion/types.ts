import type * as tf from '@tensorflow/tfjs-core';

/** The network f(x_t, t): the model, passed in; diffusion code never imports model/ (STYLE.md 1).
 * What it predicts is a PredictionTarget. */
export type Denoiser = (xt: tf.Tensor4D, timesteps: Int32Array) => tf.Tensor4D;

/**
 * What the network is trained to predict from x_t = alpha_t x_0 + sigma_t eps, with
 * alpha_t = sqrt(abar_t) and sigma_t = sqrt(1 - abar_t):
 *  - `eps`: the noise (Ho et al. 2020, Eq. 14);
 *  - `v`:   v = alpha_t eps - sigma_t x_0 (Salimans & Ho 2022, Sec. 4 and App. D), well scaled
 *           at every t, also where eps-prediction says little about x_0 (t near T);
 *  - `x0`:  the clean image itself.
 * Each is trained with a plain mean squared error on its own target.
 */
export const PREDICTION_TARGETS = ['eps', 'v', 'x0'] as const;
export type PredictionTarget = (typeof PREDICTION_TARGETS)[number];

export function isPredictionTarget(name: string): name is PredictionTarget {
  return (PREDICTION_TARGETS as readonly string[]).includes(name);
}

/** The training objective: the target, and the Min-SNR-gamma loss weighting (0: none). */
export interface Objective {
  prediction: PredictionTarget;
  snrGamma: number;
}
