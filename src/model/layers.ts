/** Building blocks of the U-Net over a name -> tensor parameter map (NHWC layout). */
import * as tf from '@tensorflow/tfjs-core';

export type Params = Readonly<Record<string, tf.Tensor>>;

export function param(params: Params, name: string): tf.Tensor {
  const p = params[name];
  if (p === undefined) throw new Error(`missing model parameter "${name}"`);
  return p;
}

export function swish(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** GroupNorm (Wu & He 2018) with per-channel scale and shift; eps as in the DDPM reference. */
export function groupNorm(params: Params, prefix: string, x: tf.Tensor4D, groups: number, eps = 1e-6): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const grouped = tf.reshape(x, [n, h * w, groups, c / groups]);
  const { mean, variance } = tf.moments(grouped, [1, 3], true);
  const normed = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, eps)));
  const y = tf.reshape(normed, [n, h, w, c]);
  return tf.add(tf.mul(y, param(params, `${prefix}/gamma`)), param(params, `${prefix}/beta`));
}

export function conv(params: Params, prefix: string, x: tf.Tensor4D, stride: 1 | 2 = 1): tf.Tensor4D {
  const y = tf.conv2d(x, param(params, `${prefix}/kernel`) as tf.Tensor4D, stride, 'same');
  return tf.add(y, param(params, `${prefix}/bias`));
}

/** Dense layer over the last axis ("nin" in the reference code when applied per pixel). */
export function dense(params: Params, prefix: string, x: tf.Tensor): tf.Tensor {
  const kernel = param(params, `${prefix}/kernel`) as tf.Tensor2D;
  const [cin, cout] = kernel.shape;
  const flat = tf.reshape(x, [-1, cin]);
  const y = tf.add(tf.matMul(flat, kernel), param(params, `${prefix}/bias`));
  return tf.reshape(y, [...x.shape.slice(0, -1), cout]);
}

/** Per-pixel dense layer ("nin" in the reference code) as a 1x1 convolution: same weights as
 * dense(), but its gradients run as convolutions, far faster than transposed matmuls on wasm. */
export function nin(params: Params, prefix: string, x: tf.Tensor4D): tf.Tensor4D {
  const kernel = param(params, `${prefix}/kernel`) as tf.Tensor2D;
  const [cin, cout] = kernel.shape;
  const y = tf.conv2d(x, tf.reshape(kernel, [1, 1, cin, cout]) as tf.Tensor4D, 1, 'valid');
  return tf.add(y, param(params, `${prefix}/bias`));
}

/**
 * Nearest-neighbour doubling of height and width, cropped to `size` (odd sizes: 4 -> 7 keeps rows
 * 0,0,1,1,2,2,3 as resizeNearestNeighbor does). Written as a broadcast so its gradient is a sum:
 * tfjs-backend-cpu 4.22's ResizeNearestNeighborGrad mixes up examples when the batch is > 1.
 */
export function upsampleNearest(x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const doubled = tf.reshape(tf.mul(tf.reshape(x, [n, h, 1, w, 1, c]), tf.ones([1, 1, 2, 1, 2, 1])), [n, 2 * h, 2 * w, c]) as tf.Tensor4D;
  return size[0] === 2 * h && size[1] === 2 * w ? doubled : tf.slice(doubled, [0, 0, 0, 0], [n, size[0], size[1], c]);
}

/** Inverted dropout with a fixed seed, so every worker drops the same units (DESIGN.md equivalence). */
export function dropout(x: tf.Tensor4D, rate: number, seed: number | undefined): tf.Tensor4D {
  if (rate === 0 || seed === undefined) return x;
  return tf.dropout(x, rate, undefined, seed) as tf.Tensor4D;
}
