/**
 * The fused GroupNorm (+ swish) kernels (src/backend/fusedKernels.ts's contracts) in WGSL for
 * tfjs's webgpu backend (swish alone: swish.ts). tfjs's autodiff of the composite GroupNorm
 * dispatched ~30 GPU programs per layer and step (moments, transposes for the reductions over
 * non-last axes, element-wise chains), at ~0.1 ms of overhead each on a GPU (PERFORMANCE.md);
 * these take 5 (forward) and 5 (backward):
 *
 *  forward   sums[b, k, c]   per channel, the sum over chunk k of the pixels (32 of them)
 *            mean[b, g]      the chunk sums of the group's channels, added in order
 *            sums[b, k, c]   the same over (x - mean)^2, and rstd[b, g]: two passes over x, no
 *                            cancellation
 *            y               element-wise: z = x scale + shift, swish(z) if asked
 *  backward  sums[2, b, k, c]  per channel, chunk sums of dz and dz x (dz recomputed through
 *                            swish from x)
 *            coef[b, c, 6]   per (example, group): scale, shift and the dx coefficients of the
 *                            analytic backward dx = r (gamma dz - mean(gamma dz) - xhat
 *                            mean(gamma dz xhat)) (fusedKernels.ts), and each channel's dbeta and
 *                            dgamma share
 *            dx              element-wise: dz scale + x bx + k
 *            dgamma, dbeta   per channel, summed over the examples in order
 *
 * Why chunk sums per channel: a thread per (example, chunk, channel) reads one channel down 32
 * pixels, and neighbouring threads read neighbouring channels, so every read is contiguous across
 * the threads and a ch64 layer at batch 64 has 131,072 of them. The first form gave a workgroup
 * of 256 threads to each (example, group) and summed it as a tree: 2,048 workgroups whose reads
 * took the group's 2-8 adjacent channels then jumped a pixel (8-32 bytes used of each 32-byte
 * sector; the backward read each channel of the group in a separate sweep), and a barrier per
 * level of the tree; GroupNorm was 9 ms of the H100 step's 74 ms of kernels, where its reads and
 * writes at the card's bandwidth take ~1.5. Every sum has a fixed order: deterministic.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { ElementwiseProgram, SWISH_WGSL, StridedSumProgram, int32Uniforms, stridedSumUniforms } from './programs';

/** Pixels a thread sums for one channel. */
export const PIXEL_CHUNK = 32;
/** coef's fields per (example, channel). */
const COEF = { scale: 0, shift: 1, bx: 2, k: 3, dbeta: 4, dgamma: 5, size: 6 };

export interface GroupNormDims {
  batch: number;
  /** Pixels per example. */
  hw: number;
  channels: number;
  groups: number;
}

const chunksOf = (d: GroupNormDims) => Math.ceil(d.hw / PIXEL_CHUNK);

const DIMS_UNIFORMS = 'batch : i32, hw : i32, channels : i32, groups : i32, groupSize : i32, chunks : i32,';

function dimsUniforms(d: GroupNormDims): Array<{ type: string; data: number[] }> {
  return int32Uniforms(d.batch, d.hw, d.channels, d.groups, d.channels / d.groups, chunksOf(d));
}

/** A thread per (example, chunk, channel): how many, and thread index's chunk with its pixel range. */
const CHUNK_THREAD = `
  fn chunkThreads() -> i32 { return uniforms.batch * uniforms.chunks * uniforms.channels; }
  struct ChunkThread { b : i32, c : i32, first : i32, last : i32, bg : i32 }
  fn chunkThread(index : i32) -> ChunkThread {
    let c = index % uniforms.channels;
    let bk = index / uniforms.channels;
    let b = bk / uniforms.chunks;
    let first = (bk - b * uniforms.chunks) * ${PIXEL_CHUNK};
    return ChunkThread(b, c, first, min(first + ${PIXEL_CHUNK}, uniforms.hw), b * uniforms.groups + c / uniforms.groupSize);
  }
`;

/** A thread per (example, group): how many, and thread index's (b, g). */
const GROUP_THREAD = `
  fn groupThreads() -> i32 { return uniforms.batch * uniforms.groups; }
  fn groupThread(index : i32) -> vec2<i32> {
    let b = index / uniforms.groups;
    return vec2<i32>(b, index - b * uniforms.groups);
  }
`;

/** sums[b, k, c] = sum over the pixels p of chunk k, in order, of x[b, p, c] (centred: (x - mean[b, g])^2). */
class ChannelChunkSumProgram extends ElementwiseProgram {
  readonly variableNames: string[];
  readonly uniforms = DIMS_UNIFORMS;
  readonly shaderKey: string;

  constructor(d: GroupNormDims, private readonly centred: boolean) {
    super([d.batch, chunksOf(d), d.channels]);
    this.variableNames = centred ? ['x', 'mean'] : ['x'];
    this.shaderKey = `ddpmChannelChunkSum_${centred}`;
  }

  getUserCode(): string {
    return `${CHUNK_THREAD}
      fn main(index : i32) {
        if (index < chunkThreads()) {
          let t = chunkThread(index);
          ${this.centred ? 'let m = mean[t.bg];' : ''}
          var acc = 0.0;
          for (var p = t.first; p < t.last; p = p + 1) {
            let v = x[(t.b * uniforms.hw + p) * uniforms.channels + t.c];
            ${this.centred ? 'acc = acc + (v - m) * (v - m);' : 'acc = acc + v;'}
          }
          result[index] = acc;
        }
      }
    `;
  }
}

/** Per (example, group): the chunk sums of its channels added in order, over the group's size;
 * the mean, or 1/sqrt(variance + eps) when `rstd`. */
class GroupStatProgram extends ElementwiseProgram {
  readonly variableNames = ['sums'];
  readonly uniforms: string;
  readonly shaderKey: string;

  constructor(d: GroupNormDims, private readonly rstd: boolean) {
    super([d.batch, d.groups]);
    this.uniforms = `${DIMS_UNIFORMS} eps : f32,`;
    this.shaderKey = `ddpmGroupStat_${rstd}`;
  }

  getUserCode(): string {
    return `${GROUP_THREAD}
      fn main(index : i32) {
        if (index < groupThreads()) {
          let bg = groupThread(index);
          let b = bg.x;
          let g = bg.y;
          var total = 0.0;
          for (var k = 0; k < uniforms.chunks; k = k + 1) {
            let row = (b * uniforms.chunks + k) * uniforms.channels + g * uniforms.groupSize;
            for (var j = 0; j < uniforms.groupSize; j = j + 1) {
              total = total + sums[row + j];
            }
          }
          let v = total / f32(uniforms.hw * uniforms.groupSize);
          result[index] = ${this.rstd ? 'inverseSqrt(v + uniforms.eps)' : 'v'};
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

/** sums[0, b, k, c] and sums[1, b, k, c]: over the pixels of chunk k, in order, dz and dz x. */
class GradChunkSumProgram extends ElementwiseProgram {
  readonly variableNames = ['dy', 'x', 'gamma', 'beta', 'mean', 'rstd'];
  readonly uniforms = DIMS_UNIFORMS;
  readonly shaderKey: string;

  constructor(d: GroupNormDims, private readonly swish: boolean) {
    super([2, d.batch, chunksOf(d), d.channels], d.batch * chunksOf(d) * d.channels);
    this.shaderKey = `ddpmGroupNormGradChunkSum_${swish}`;
  }

  getUserCode(): string {
    return `${CHUNK_THREAD}${SWISH_WGSL}
      fn main(index : i32) {
        if (index < chunkThreads()) {
          let t = chunkThread(index);
          let scale = rstd[t.bg] * gamma[t.c];
          let shift = beta[t.c] - mean[t.bg] * scale;
          var sumDz = 0.0;
          var sumDzX = 0.0;
          for (var p = t.first; p < t.last; p = p + 1) {
            let i = (t.b * uniforms.hw + p) * uniforms.channels + t.c;
            let xv = x[i];
            ${this.swish ? 'let dz = swishGrad(dy[i], xv * scale + shift);' : 'let dz = dy[i];'}
            sumDz = sumDz + dz;
            sumDzX = sumDzX + dz * xv;
          }
          result[index] = sumDz;
          result[index + chunkThreads()] = sumDzX;
        }
      }
    `;
  }
}

/** A thread per (example, group): each channel's chunk sums added in order, then coef. */
class GroupNormGradCoefProgram extends ElementwiseProgram {
  readonly variableNames = ['sums', 'gamma', 'beta', 'mean', 'rstd'];
  readonly uniforms = DIMS_UNIFORMS;
  readonly shaderKey = 'ddpmGroupNormGradCoef';

  constructor(d: GroupNormDims) {
    super([d.batch, d.channels, COEF.size], d.batch * d.groups);
  }

  getUserCode(): string {
    return `${CHUNK_THREAD}${GROUP_THREAD}
      fn main(index : i32) {
        if (index < groupThreads()) {
          let bg = groupThread(index);
          let b = bg.x;
          let g = bg.y;
          let m = mean[index];
          let r = rstd[index];
          var s1 = 0.0;
          var s2 = 0.0;
          for (var j = 0; j < uniforms.groupSize; j = j + 1) {
            let ch = g * uniforms.groupSize + j;
            var sumDz = 0.0;
            var sumDzX = 0.0;
            for (var k = 0; k < uniforms.chunks; k = k + 1) {
              let s = (b * uniforms.chunks + k) * uniforms.channels + ch;
              sumDz = sumDz + sums[s];
              sumDzX = sumDzX + sums[s + chunkThreads()];
            }
            let scale = r * gamma[ch];
            // sum dz xhat = r (sum dz x - m sum dz); the group sums of gamma dz and gamma dz xhat.
            let dzXhat = r * (sumDzX - m * sumDz);
            s1 = s1 + gamma[ch] * sumDz;
            s2 = s2 + gamma[ch] * dzXhat;
            let o = (b * uniforms.channels + ch) * ${COEF.size};
            result[o + ${COEF.scale}] = scale;
            result[o + ${COEF.shift}] = beta[ch] - m * scale;
            result[o + ${COEF.dbeta}] = sumDz;
            result[o + ${COEF.dgamma}] = dzXhat;
          }
          let count = f32(uniforms.hw * uniforms.groupSize);
          let m1 = s1 / count;
          let m2 = s2 / count;
          // dx = r (gamma dz - m1 - (x - m) r m2) = dz scale + x bx + k.
          let bx = -r * r * m2;
          let k = r * r * m2 * m - r * m1;
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
  const statUniforms = [...dimsUniforms(d), { type: 'float32', data: [eps] }];
  const groupStat = (centred: boolean, inputs: tf.TensorInfo[]) => {
    const sums = backend.runWebGPUProgram(new ChannelChunkSumProgram(d, centred), inputs, 'float32', dimsUniforms(d));
    const stat = backend.runWebGPUProgram(new GroupStatProgram(d, centred), [sums], 'float32', statUniforms);
    backend.disposeData(sums.dataId);
    return stat;
  };
  const mean = groupStat(false, [x]);
  const rstd = groupStat(true, [x, mean]);
  const y = backend.runWebGPUProgram(new GroupNormApplyProgram(x.shape, swish), [x, gamma, beta, mean, rstd], 'float32', dimsUniforms(d));
  return [y, mean, rstd];
}

/** [dx, dgamma, dbeta] of GroupNorm (+ swish), from the forward's saved mean and rstd. */
export function groupNormBackward(backend: WebGPUBackend, dy: tf.TensorInfo, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo, mean: tf.TensorInfo, rstd: tf.TensorInfo,
  d: GroupNormDims, swish: boolean): tf.TensorInfo[] {
  const sums = backend.runWebGPUProgram(new GradChunkSumProgram(d, swish), [dy, x, gamma, beta, mean, rstd], 'float32', dimsUniforms(d));
  const coef = backend.runWebGPUProgram(new GroupNormGradCoefProgram(d), [sums, gamma, beta, mean, rstd], 'float32', dimsUniforms(d));
  backend.disposeData(sums.dataId);
  const dx = backend.runWebGPUProgram(new GroupNormGradDxProgram(x.shape, swish), [dy, x, coef], 'float32', dimsUniforms(d));
  // Per channel, summed over the examples in order: out[c] = sum over b of coef[b, c, field].
  const channelSum = (field: number) => backend.runWebGPUProgram(new StridedSumProgram([d.channels]), [coef], 'float32',
    stridedSumUniforms(d.batch, d.channels * COEF.size, COEF.size, field));
  const dgamma = channelSum(COEF.dgamma);
  const dbeta = channelSum(COEF.dbeta);
  backend.disposeData(coef.dataId);
  return [dx, dgamma, dbeta];
}
