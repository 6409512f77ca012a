/** Building blocks of the U-Net over a name -> tensor parameter map (NHWC layout). */
import * as tf from '@tensorflow/tfjs-core';
import { GROUP_NORM, GroupNormAttrs, SWISH, hasFusedKernels, registerFusedKernels } from '../backend/fusedKernels';
import { DROPOUT, dropoutMask } from '../backend/dropoutMask';
import { dropoutSeedTensor } from '../backend/stepInputs';
import { hashKey } from '../rng/rng';

// The fused GroupNorm and swish kernels: cpu and wasm register here, webgpu when it starts
// (src/backend/webgpu/register.ts); elsewhere the same functions compose tfjs ops (with the same
// analytic gradients).
registerFusedKernels('cpu');
registerFusedKernels('wasm');

export type Params = Readonly<Record<string, tf.Tensor>>;

export function param(params: Params, name: string): tf.Tensor {
  const p = params[name];
  if (p === undefined) throw new Error(`missing model parameter "${name}"`);
  return p;
}

/** swish(x) = x sigmoid(x), with the one-pass gradient dy s (1 + x (1 - s)). */
export function swish<T extends tf.Tensor>(x: T): T {
  if (hasFusedKernels() && x.dtype === 'float32') return tf.engine().runKernel(SWISH, { x }) as T;
  return swishComposite(x);
}

export function swishComposite<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad(((xv: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xv]);
    return {
      value: tf.mul(xv, tf.sigmoid(xv)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs] = saved;
        const s = tf.sigmoid(xs);
        return tf.mul(dy, tf.mul(s, tf.add(1, tf.mul(xs, tf.sub(1, s)))));
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}

/**
 * GroupNorm (Wu & He 2018) of NHWC x with per-channel gamma and beta, optionally followed by
 * swish, as one op with an analytic gradient (src/backend/fusedKernels.ts).
 */
export function groupNormAct(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number, withSwish: boolean): tf.Tensor4D {
  const attrs: GroupNormAttrs = { groups, eps, swish: withSwish };
  if (hasFusedKernels() && x.dtype === 'float32') {
    const [y] = tf.engine().runKernel(GROUP_NORM, { x, gamma, beta }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    return y as tf.Tensor4D;
  }
  return groupNormComposite(x, gamma, beta, attrs);
}

/** The same op from tfjs ops, for backends without the fused kernels: forward as the plain
 * composition, backward the analytic formula (far fewer kernels than autodiff). */
export function groupNormComposite(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, { groups, eps, swish: withSwish }: GroupNormAttrs): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const grouped = [n, h * w, groups, c / groups];
  const f = tf.customGrad(((xv: tf.Tensor4D, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const xg = tf.reshape(xv, grouped);
    const { mean, variance } = tf.moments(xg, [1, 3], true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const z = tf.add(tf.mul(tf.reshape(tf.mul(tf.sub(xg, mean), rstd), xv.shape), g), b);
    save([xv, g, b, mean, rstd]);
    return {
      value: withSwish ? tf.mul(z, tf.sigmoid(z)) : z,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, gs, bs, ms, rs] = saved;
        const xhat = tf.reshape(tf.mul(tf.sub(tf.reshape(xs, grouped), ms), rs), xs.shape);
        let dz = dy;
        if (withSwish) {
          const zs = tf.add(tf.mul(xhat, gs), bs);
          const s = tf.sigmoid(zs);
          dz = tf.mul(dy, tf.mul(s, tf.add(1, tf.mul(zs, tf.sub(1, s)))));
        }
        const dbeta = tf.sum(dz, [0, 1, 2]);
        const dgamma = tf.sum(tf.mul(dz, xhat), [0, 1, 2]);
        const dyhat = tf.reshape(tf.mul(dz, gs), grouped);
        const xhatG = tf.reshape(xhat, grouped);
        const m1 = tf.mean(dyhat, [1, 3], true);
        const m2 = tf.mean(tf.mul(dyhat, xhatG), [1, 3], true);
        const dx = tf.reshape(tf.mul(tf.sub(tf.sub(dyhat, m1), tf.mul(xhatG, m2)), rs), xs.shape);
        return [dx, tf.reshape(dgamma, gs.shape), tf.reshape(dbeta, bs.shape)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (f as unknown as (...t: tf.Tensor[]) => tf.Tensor4D)(x, gamma, beta);
}

/** GroupNorm with per-channel scale and shift; eps as in the DDPM reference. */
export function groupNorm(params: Params, prefix: string, x: tf.Tensor4D, groups: number, eps = 1e-6): tf.Tensor4D {
  return groupNormAct(x, param(params, `${prefix}/gamma`), param(params, `${prefix}/beta`), groups, eps, false);
}

/** swish(groupNorm(x)) as one fused op. */
export function groupNormSwish(params: Params, prefix: string, x: tf.Tensor4D, groups: number, eps = 1e-6): tf.Tensor4D {
  return groupNormAct(x, param(params, `${prefix}/gamma`), param(params, `${prefix}/beta`), groups, eps, true);
}

/** conv2d + bias as one FusedConv2D kernel (XNNPACK adds the bias on wasm); tfjs's gradient for
 * it is the two conv gradients and the bias sum, as for the separate ops. */
export function conv(params: Params, prefix: string, x: tf.Tensor4D, stride: 1 | 2 = 1): tf.Tensor4D {
  return tf.fused.conv2d({ x, filter: param(params, `${prefix}/kernel`) as tf.Tensor4D, strides: stride, pad: 'same', bias: param(params, `${prefix}/bias`) });
}

/** Dense layer over the last axis ("nin" in the reference code when applied per pixel). */
export function dense(params: Params, prefix: string, x: tf.Tensor): tf.Tensor {
  const kernel = param(params, `${prefix}/kernel`) as tf.Tensor2D;
  const [cin, cout] = kernel.shape;
  const flat = tf.reshape(x, [-1, cin]);
  const y = tf.fused.matMul({ a: flat, b: kernel, bias: param(params, `${prefix}/bias`) });
  return tf.reshape(y, [...x.shape.slice(0, -1), cout]);
}

/** Per-pixel dense layer ("nin" in the reference code) as a 1x1 convolution: same weights as
 * dense(), but its gradients run as convolutions, far faster than transposed matmuls on wasm. */
export function nin(params: Params, prefix: string, x: tf.Tensor4D): tf.Tensor4D {
  const kernel = param(params, `${prefix}/kernel`) as tf.Tensor2D;
  const [cin, cout] = kernel.shape;
  return tf.fused.conv2d({ x, filter: tf.reshape(kernel, [1, 1, cin, cout]) as tf.Tensor4D, strides: 1, pad: 'valid', bias: param(params, `${prefix}/bias`) });
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

/**
 * Inverted dropout whose mask is a function of the unit's dropout seed and the block's index
 * (src/backend/dropoutMask.ts), so every worker drops the same units (DESIGN.md equivalence). On
 * webgpu the mask is computed in place on the GPU from a one-value seed tensor; elsewhere it is
 * built on the host and multiplied in.
 */
export function dropout(x: tf.Tensor4D, rate: number, unitSeed: number | undefined, block: number): tf.Tensor4D {
  if (rate === 0 || unitSeed === undefined) return x;
  if (tf.getKernel(DROPOUT, tf.getBackend()) !== undefined && x.dtype === 'float32') {
    const seed = dropoutSeedTensor(unitSeed, (s) => Int32Array.of(hashKey(s, block) | 0), [1]);
    return tf.engine().runKernel(DROPOUT, { x, seed }, { rate } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  }
  return tf.mul(x, tf.tensor(dropoutMask(hashKey(unitSeed, block), x.size, rate), x.shape)) as tf.Tensor4D;
}
