/**
 * Dropout masks from a counter-based hash (proto/README.md, "Dropout"): element i of a residual
 * block's activation (flat NHWC index) is kept iff fmix32(seed ^ fmix32(i)) >= floor(rate 2^32),
 * with seed = hashKey(the unit's dropout seed, block index), and a kept value is scaled by
 * float32(1 / (1 - rate)) (inverted dropout). Every element is a pure function of (seed, i), so a
 * GPU computes its mask in place (webgpu/dropout.ts) and no mask crosses from the host; on
 * backends without that kernel the same mask is built on the host here. Same bits everywhere:
 * y = x times 0 or the scale is one float32 multiplication.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fmix32 } from '../rng/rng';

export const DROPOUT = 'DdpmDropout';

export interface DropoutAttrs {
  rate: number;
}

/** The uint32 a hash must reach for its element to be kept. */
export function dropoutThreshold(rate: number): number {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${rate}`);
  return Math.floor(rate * 2 ** 32);
}

export function dropoutScale(rate: number): number {
  return Math.fround(1 / (1 - rate));
}

/** The mask of `size` elements: the scale where kept, 0 where dropped. */
export function dropoutMask(seed: number, size: number, rate: number): Float32Array {
  const threshold = dropoutThreshold(rate);
  const scale = dropoutScale(rate);
  const mask = new Float32Array(size);
  for (let i = 0; i < size; i++) mask[i] = fmix32((seed ^ fmix32(i)) >>> 0) >= threshold ? scale : 0;
  return mask;
}

let gradientRegistered = false;

/** DdpmDropout's gradient: the same mask applied to dy (the seed gets none). Idempotent. */
export function registerDropoutGradient(): void {
  if (gradientRegistered) return;
  gradientRegistered = true;
  tf.registerGradient({
    kernelName: DROPOUT,
    inputsToSave: ['seed'],
    gradFunc: (dy, saved, attrs) => {
      const [seed] = saved;
      return { x: () => tf.engine().runKernel(DROPOUT, { x: dy as tf.Tensor, seed }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor };
    },
  });
}
