/**
 * Classifier-free guidance (Ho & Salimans 2022, Eq. 6): one network trained with and without the
 * class (its label dropped at random), sampled with
 *   out = out_uncond + s (out_cond - out_uncond),
 * s = 1 + w in the paper's terms: s = 1 is the conditional model alone, s > 1 trades diversity for
 * fidelity to the class. Applied to whatever the network predicts (eps, v or x0): the mixture is
 * linear, and each of them determines x0 linearly at a given x_t.
 */
import * as tf from '@tensorflow/tfjs-core';

export function guide(conditional: tf.Tensor4D, unconditional: tf.Tensor4D, scale: number): tf.Tensor4D {
  return tf.tidy(() => tf.add(unconditional, tf.mul(tf.sub(conditional, unconditional), scale)));
}
