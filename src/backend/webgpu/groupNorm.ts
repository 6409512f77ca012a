/**
 * The fused GroupNorm (+ swish) kernels (src/backend/fusedKernels.ts's contracts) in WGSL for
 * tfjs's webgpu backend (swish alone: swish.ts). tfjs's autodiff of the composite GroupNorm
 * dispatched ~30 GPU programs per layer and step (moments, transposes for the reductions over
 * non-last axes, element-wise chains), at ~0.1 ms of overhead each on a GPU (PERFORMANCE.md);
 * these take 3 (forward) and 4 (backward):
 *
 *  forward   mean[b, g]      one workgroup per (example, group), tree sum
 *            rstd[b, g]      the same, over (x - mean)^2: two passes, no cancellation
 *            y               element-wise: z = x scale + shift, swish(z) if asked
 *  backward  coef[b, c, 6]   one workgroup per (example, group): per channel the sums of dz and
 *                            dz x over the pixels (dz recomputed through swish from x), then
 *                            scale, shift and the dx coefficients of the analytic backward
 *                            dx = r (gamma dz - mean(gamma dz) - xhat mean(gamma dz xhat))
 *                            (fusedKernels.ts), and each channel's dbeta and dgamma share
 *            dx              element-wise: dz scale + x bx + k
 *            dgamma, dbeta   per channel, summed over the examples in order
 * Every sum has a fixed order (a tree over a fixed workgroup), so results are deterministic.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { ElementwiseProgram, SWISH_WGSL, StridedSumProgram, int32Uniforms, stridedSumUniforms } from './programs';

const REDUCE_THREADS = 256;
/** coef's fields per (example, channel). */
const COEF = { scale: 0, shift: 1, bx: 2, k: 3, dbeta: 4, dgamma: 5, size: 6 };

export interface GroupNormDims {
  batch: number;
  /** Pixels per example. */
  hw: number;
  channels: number;
  groups: number;
}

/** Workgroup tree sum of two values per thread; every thread gets both totals. */
const TREE_SUM = `
  var<workgroup> sumA : array<f32, ${REDUCE_THREADS}>;
  var<workgroup> sumB : array<f32, ${REDUCE_THREADS}>;

  fn treeSum(a : f32, b : f32) -> vec2<f32> {
    let t = localIndex;
    sumA[t] = a;
    sumB[t] = b;
    workgroupBarrier();
    for (var s = ${REDUCE_THREADS / 2}u; s > 0u; s = s >> 1u) {
      if (t < s) {
        sumA[t] = sumA[t] + sumA[t + s];
        sumB[t] = sumB[t] + sumB[t + s];
      }
      workgroupBarrier();
    }
    let total = vec2<f32>(sumA[0], sumB[0]);
    workgroupBarrier();
    return total;
  }
`;


const DIMS_UNIFORMS = 'hw : i32, channels : i32, groups : i32, groupSize : i32,';

function dimsUniforms(d: GroupNormDims): Array<{ type: string; data: number[] }> {
  return int32Uniforms(d.hw, d.channels, d.groups, d.channels / d.groups);
}

/** One workgroup per (example, group): element e of the group is pixel e / groupSize, channel
 * g * groupSize + e % groupSize. */
abstract class PerGroupProgram implements WebGPUProgram {
  abstract readonly variableNames: string[];
  abstract readonly shaderKey: string;
  readonly workgroupSize: [number, number, number] = [REDUCE_THREADS, 1, 1];
  readonly dispatchLayout = { x: [1], y: [0] };
  readonly dispatch: [number, number, number];
  uniforms = DIMS_UNIFORMS;

  constructor(readonly outputShape: number[], d: GroupNormDims) {
    this.dispatch = [d.groups, d.batch, 1];
  }

  abstract getUserCode(): string;
}

class GroupMeanProgram extends PerGroupProgram {
  readonly variableNames = ['x'];
  readonly shaderKey = 'ddpmGroupMean';

  getUserCode(): string {
    return `${TREE_SUM}
      fn main() {
        let g = i32(workgroupId.x);
        let b = i32(workgroupId.y);
        let count = uniforms.hw * uniforms.groupSize;
        var acc = 0.0;
        for (var e = i32(localIndex); e < count; e = e + ${REDUCE_THREADS}) {
          let p = e / uniforms.groupSize;
          acc = acc + x[(b * uniforms.hw + p) * uniforms.channels + g * uniforms.groupSize + e - p * uniforms.groupSize];
        }
        let total = treeSum(acc, 0.0);
        if (localIndex == 0u) {
          result[b * uniforms.groups + g] = total.x / f32(count);
        }
      }
    `;
  }
}

class GroupRstdProgram extends PerGroupProgram {
  readonly variableNames = ['x', 'mean'];
  readonly shaderKey = 'ddpmGroupRstd';

  constructor(outputShape: number[], d: GroupNormDims) {
    super(outputShape, d);
    this.uniforms = `${DIMS_UNIFORMS} eps : f32,`;
  }

  getUserCode(): string {
    return `${TREE_SUM}
      fn main() {
        let g = i32(workgroupId.x);
        let b = i32(workgroupId.y);
        let m = mean[b * uniforms.groups + g];
        let count = uniforms.hw * uniforms.groupSize;
        var acc = 0.0;
        for (var e = i32(localIndex); e < count; e = e + ${REDUCE_THREADS}) {
          let p = e / uniforms.groupSize;
          let d = x[(b * uniforms.hw + p) * uniforms.channels + g * uniforms.groupSize + e - p * uniforms.groupSize] - m;
          acc = acc + d * d;
        }
        let total = treeSum(acc, 0.0);
        if (localIndex == 0u) {
          result[b * uniforms.groups + g] = inverseSqrt(total.x / f32(count) + uniforms.eps);
        }
      }
    `;
  }
}

class GroupNormApplyProgram extends ElementwiseProgram {
  readonly variableNames = ['x', 'gamma', 'beta', 'mean', 'rstd'];
  readonly uniforms = DIMS_UNIFORMS;
  readonly shaderKey: string;

  constructor(outputShape: number[], private readonly swish: boolean) {
    super(outputShape);
    this.shaderKey = `ddpmGroupNormApply_${swish}`;
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let ch = index % uniforms.channels;
          let b = index / (uniforms.hw * uniforms.channels);
          let bg = b * uniforms.groups + ch / uniforms.groupSize;
          let scale = rstd[bg] * gamma[ch];
          let z = (x[index] - mean[bg]) * scale + beta[ch];
          ${this.swish ? 'setOutputAtIndex(index, z / (1.0 + exp(-z)));' : 'setOutputAtIndex(index, z);'}
        }
      }
    `;
  }
}

class GroupNormGradCoefProgram extends PerGroupProgram {
  readonly variableNames = ['dy', 'x', 'gamma', 'beta', 'mean', 'rstd'];
  readonly shaderKey: string;

  constructor(outputShape: number[], d: GroupNormDims, private readonly swish: boolean) {
    super(outputShape, d);
    this.shaderKey = `ddpmGroupNormGradCoef_${swish}`;
  }

  getUserCode(): string {
    return `${TREE_SUM}${SWISH_WGSL}
      fn main() {
        let g = i32(workgroupId.x);
        let b = i32(workgroupId.y);
        let bg = b * uniforms.groups + g;
        let m = mean[bg];
        let r = rstd[bg];
        var s1 = 0.0;
        var s2 = 0.0;
        for (var j = 0; j < uniforms.groupSize; j = j + 1) {
          let ch = g * uniforms.groupSize + j;
          let scale = r * gamma[ch];
          let shift = beta[ch] - m * scale;
          var sumDz = 0.0;
          var sumDzX = 0.0;
          for (var p = i32(localIndex); p < uniforms.hw; p = p + ${REDUCE_THREADS}) {
            let i = (b * uniforms.hw + p) * uniforms.channels + ch;
            let xv = x[i];
            ${this.swish ? 'let dz = swishGrad(dy[i], xv * scale + shift);' : 'let dz = dy[i];'}
            sumDz = sumDz + dz;
            sumDzX = sumDzX + dz * xv;
          }
          let total = treeSum(sumDz, sumDzX);
          // sum dz xhat = r (sum dz x - m sum dz); the group sums of gamma dz and gamma dz xhat.
          let dzXhat = r * (total.y - m * total.x);
          s1 = s1 + gamma[ch] * total.x;
          s2 = s2 + gamma[ch] * dzXhat;
          if (localIndex == 0u) {
            let o = (b * uniforms.channels + ch) * ${COEF.size};
            result[o + ${COEF.scale}] = scale;
            result[o + ${COEF.shift}] = shift;
            result[o + ${COEF.dbeta}] = total.x;
            result[o + ${COEF.dgamma}] = dzXhat;
          }
        }
        let count = f32(uniforms.hw * uniforms.groupSize);
        let m1 = s1 / count;
        let m2 = s2 / count;
        // dx = r (gamma dz - m1 - (x - m) r m2) = dz scale + x bx + k.
        let bx = -r * r * m2;
        let k = r * r * m2 * m - r * m1;
        if (localIndex == 0u) {
          for (var j = 0; j < uniforms.groupSize; j = j + 1) {
            let o = (b * uniforms.channels + g * uniforms.groupSize + j) * ${COEF.size};
            result[o + ${COEF.bx}] = bx;
            result[o + ${COEF.k}] = k;
          }
        }
      }
    `;
  }
}

class GroupNormGradDxProgram extends ElementwiseProgram {
  readonly variableNames = ['dy', 'x', 'coef'];
  readonly uniforms = DIMS_UNIFORMS;
  readonly shaderKey: string;

  constructor(outputShape: number[], private readonly swish: boolean) {
    super(outputShape);
    this.shaderKey = `ddpmGroupNormGradDx_${swish}`;
  }

  getUserCode(): string {
    return `${SWISH_WGSL}
      fn main(index : i32) {
        if (index < uniforms.size) {
          let ch = index % uniforms.channels;
          let b = index / (uniforms.hw * uniforms.channels);
          let o = (b * uniforms.channels + ch) * ${COEF.size};
          let scale = coef[o + ${COEF.scale}];
          let xv = x[index];
          ${this.swish ? `let dz = swishGrad(dy[index], xv * scale + coef[o + ${COEF.shift}]);` : 'let dz = dy[index];'}
          setOutputAtIndex(index, dz * scale + xv * coef[o + ${COEF.bx}] + coef[o + ${COEF.k}]);
        }
      }
    `;
  }
}

/** [y, mean, rstd] of GroupNorm (+ swish) over NHWC x. */
export function groupNormForward(backend: WebGPUBackend, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo, d: GroupNormDims, eps: number, swish: boolean): tf.TensorInfo[] {
  const stats = [d.batch, d.groups];
  const mean = backend.runWebGPUProgram(new GroupMeanProgram(stats, d), [x], 'float32', dimsUniforms(d));
  const rstd = backend.runWebGPUProgram(new GroupRstdProgram(stats, d), [x, mean], 'float32', [...dimsUniforms(d), { type: 'float32', data: [eps] }]);
  const y = backend.runWebGPUProgram(new GroupNormApplyProgram(x.shape, swish), [x, gamma, beta, mean, rstd], 'float32', dimsUniforms(d));
  return [y, mean, rstd];
}

/** [dx, dgamma, dbeta] of GroupNorm (+ swish), from the forward's saved mean and rstd. */
export function groupNormBackward(backend: WebGPUBackend, dy: tf.TensorInfo, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo, mean: tf.TensorInfo, rstd: tf.TensorInfo,
  d: GroupNormDims, swish: boolean): tf.TensorInfo[] {
  const coef = backend.runWebGPUProgram(new GroupNormGradCoefProgram([d.batch, d.channels, COEF.size], d, swish), [dy, x, gamma, beta, mean, rstd], 'float32', dimsUniforms(d));
  const dx = backend.runWebGPUProgram(new GroupNormGradDxProgram(x.shape, swish), [dy, x, coef], 'float32', dimsUniforms(d));
  // Per channel, summed over the examples in order: out[c] = sum over b of coef[b, c, field].
  const channelSum = (field: number) => backend.runWebGPUProgram(new StridedSumProgram([d.channels]), [coef], 'float32',
    stridedSumUniforms(d.batch, d.channels * COEF.size, COEF.size, field));
  const dgamma = channelSum(COEF.dgamma);
  const dbeta = channelSum(COEF.dbeta);
  backend.disposeData(coef.dataId);
  return [dx, dgamma, dbeta];
}
