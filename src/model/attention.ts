/** Single-head self-attention over all pixels (DDPM reference attn_block):
 * softmax(q k^T / sqrt(C)) v, projected, added to the input. */
import * as tf from '@tensorflow/tfjs-core';
import { Params, groupNorm, nin } from './layers';

export function attnBlock(params: Params, prefix: string, x: tf.Tensor4D, groups: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const normed = groupNorm(params, `${prefix}/norm`, x, groups);
  const tokens = (t: tf.Tensor4D) => tf.reshape(t, [n, h * w, c]) as tf.Tensor3D;
  const q = tokens(nin(params, `${prefix}/q`, normed));
  const k = tokens(nin(params, `${prefix}/k`, normed));
  const v = tokens(nin(params, `${prefix}/v`, normed));
  const logits = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(c));
  const weights = tf.softmax(logits);
  const attended = tf.reshape(tf.matMul(weights, v), [n, h, w, c]) as tf.Tensor4D;
  return tf.add(x, nin(params, `${prefix}/proj_out`, attended));
}
