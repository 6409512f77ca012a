import type * as tf from '@tensorflow/tfjs-core';

/** eps_theta(x_t, t): the model, passed in; diffusion code never imports model/ (STYLE.md 1). */
export type Denoiser = (xt: tf.Tensor4D, timesteps: Int32Array) => tf.Tensor4D;

export const PREDICTION_TARGETS = ['eps'] as const;
