/**
 * The conv weight gradient on webgpu as a tiled, split-K implicit matmul.
 *
 * dW[m, n] = sum_k A[k, m] * dy[k, n], with k = (b, oy, ox) over every output position,
 * m = (fh, fw, ci) over the filter's taps and input channels, n = co, and
 * A[k, m] = x[b, oy*sh + fh - padTop, ox*sw + fw - padLeft, ci] (zero outside the input).
 *
 * tfjs's own webgpu kernel gives each of the kh*kw*Ci*Co outputs one thread that walks all of k
 * alone: for the ch-64 U-Net at batch 64 that is 36,864 threads each summing 65,536 products
 * with strided reads, 85% of a step's kernel time on an H200 (PERFORMANCE.md). Here a workgroup
 * computes a 64x64 tile of dW over one slice of k, staging 16-row slabs of A and dy in workgroup
 * memory (each element read from global memory once per tile, not once per output); the slices
 * ("split-K") give the GPU enough workgroups when dW is small and k is long. Each slice writes
 * its own partial tile and a second pass sums them in a fixed order, so the result does not
 * depend on scheduling (tfjs's split-K matmul adds with float atomics instead, whose order
 * varies run to run).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { StridedSumProgram, int32Uniforms, stridedSumUniforms } from './programs';

/** Tile edge in m and n, and rows of k staged per barrier. A 16x16 workgroup, 4x4 outputs per thread. */
const TILE = 64;
const SLAB = 16;
/** About how many workgroups fill a large GPU (an H100 holds ~8 of these per SM, 132 SMs). */
const TARGET_WORKGROUPS = 1024;
/** A slice shorter than this spends more on its partial tile than on products. */
const MIN_SLICE = 256;

export interface SplitPlan {
  /** Number of k slices (partial tiles per output tile). */
  splits: number;
  /** Rows of k per slice, a multiple of SLAB. */
  sliceRows: number;
}

/** How many k slices: enough workgroups to fill the GPU, none shorter than MIN_SLICE rows. */
export function planSplits(m: number, n: number, k: number): SplitPlan {
  const tiles = Math.ceil(m / TILE) * Math.ceil(n / TILE);
  const wanted = Math.max(1, Math.min(Math.ceil(TARGET_WORKGROUPS / tiles), Math.floor(k / MIN_SLICE)));
  const sliceRows = Math.ceil(Math.ceil(k / wanted) / SLAB) * SLAB;
  return { splits: Math.ceil(k / sliceRows), sliceRows };
}

class FilterGradPartialProgram implements WebGPUProgram {
  readonly variableNames = ['x', 'dy'];
  readonly uniforms = 'M : i32, N : i32, K : i32, sliceSlabs : i32, outHW : i32, outW : i32, inH : i32, inW : i32, inC : i32, ' +
    'filterW : i32, strideH : i32, strideW : i32, padTop : i32, padLeft : i32,';
  readonly workgroupSize: [number, number, number] = [16, 16, 1];
  readonly outputShape: number[];
  readonly dispatchLayout = { x: [2], y: [1], z: [0] };
  readonly dispatch: [number, number, number];
  readonly shaderKey = `ddpmFilterGradPartial_${TILE}_${SLAB}`;

  constructor(m: number, n: number, splits: number) {
    this.outputShape = [splits, m, n];
    this.dispatch = [Math.ceil(n / TILE), Math.ceil(m / TILE), splits];
  }

  getUserCode(): string {
    return `
      // vec4s of 4 consecutive m (slabA) or n (slabB) values: a thread reads its 4x4 block's
      // operands for one row of k in two 16-byte loads. Scalar loads took 8, and the B side's
      // stride of 4 words made them 2-way bank conflicts: the inner loop was bound by workgroup
      // memory, not arithmetic.
      var<workgroup> slabA : array<vec4<f32>, ${(SLAB * TILE) / 4}>;
      var<workgroup> slabB : array<vec4<f32>, ${(SLAB * TILE) / 4}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let mBase = i32(workgroupId.y) * ${TILE};
        let nBase = i32(workgroupId.x) * ${TILE};
        let slice = i32(workgroupId.z);
        // Each thread stages row loadRow, columns loadCol..loadCol+3 of both slabs.
        let t = ty * 16 + tx;
        let loadRow = t / 16;
        let loadCol = (t % 16) * 4;

        // This thread's four filter rows m never change along k: decode them once.
        var tapY = vec4<i32>(0);
        var tapX = vec4<i32>(0);
        var chan = vec4<i32>(0);
        var mOk = vec4<bool>(false);
        for (var i = 0; i < 4; i = i + 1) {
          let m = mBase + loadCol + i;
          let tap = m / uniforms.inC;
          chan[i] = m - tap * uniforms.inC;
          let fh = tap / uniforms.filterW;
          tapY[i] = fh - uniforms.padTop;
          tapX[i] = tap - fh * uniforms.filterW - uniforms.padLeft;
          mOk[i] = m < uniforms.M;
        }

        var acc : array<vec4<f32>, 4>;
        let kStart = slice * uniforms.sliceSlabs * ${SLAB};
        // The trip count is the same for every workgroup (barriers need uniform control flow);
        // rows past K stage zeros.
        for (var s = 0; s < uniforms.sliceSlabs; s = s + 1) {
          let k = kStart + s * ${SLAB} + loadRow;
          let kOk = k < uniforms.K;
          let b = k / uniforms.outHW;
          let r = k - b * uniforms.outHW;
          let oy = r / uniforms.outW;
          let ox = r - oy * uniforms.outW;
          var a = vec4<f32>(0.0);
          var g = vec4<f32>(0.0);
          for (var i = 0; i < 4; i = i + 1) {
            let iy = oy * uniforms.strideH + tapY[i];
            let ix = ox * uniforms.strideW + tapX[i];
            if (kOk && mOk[i] && iy >= 0 && iy < uniforms.inH && ix >= 0 && ix < uniforms.inW) {
              a[i] = x[((b * uniforms.inH + iy) * uniforms.inW + ix) * uniforms.inC + chan[i]];
            }
            let n = nBase + loadCol + i;
            if (kOk && n < uniforms.N) {
              g[i] = dy[k * uniforms.N + n];
            }
          }
          slabA[loadRow * ${TILE / 4} + loadCol / 4] = a;
          slabB[loadRow * ${TILE / 4} + loadCol / 4] = g;
          workgroupBarrier();
          for (var kk = 0; kk < ${SLAB}; kk = kk + 1) {
            let av = slabA[kk * ${TILE / 4} + ty];
            let bv = slabB[kk * ${TILE / 4} + tx];
            acc[0] = acc[0] + av[0] * bv;
            acc[1] = acc[1] + av[1] * bv;
            acc[2] = acc[2] + av[2] * bv;
            acc[3] = acc[3] + av[3] * bv;
          }
          workgroupBarrier();
        }

        for (var i = 0; i < 4; i = i + 1) {
          let m = mBase + ty * 4 + i;
          for (var j = 0; j < 4; j = j + 1) {
            let n = nBase + tx * 4 + j;
            if (m < uniforms.M && n < uniforms.N) {
              result[(slice * uniforms.M + m) * uniforms.N + n] = acc[i][j];
            }
          }
        }
      }
    `;
  }
}

/** dW for NHWC x [B, H, W, Ci] and dy [B, Ho, Wo, Co], shaped [kh, kw, Ci, Co]. */
export function filterGradient(backend: WebGPUBackend, x: tf.TensorInfo, dy: tf.TensorInfo, c: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const m = c.filterHeight * c.filterWidth * c.inChannels;
  const n = c.outChannels;
  const k = c.batchSize * c.outHeight * c.outWidth;
  const { splits, sliceRows } = planSplits(m, n, k);
  const partial = backend.runWebGPUProgram(new FilterGradPartialProgram(m, n, splits), [x, dy], 'float32',
    int32Uniforms(m, n, k, sliceRows / SLAB, c.outHeight * c.outWidth, c.outWidth, c.inHeight, c.inWidth, c.inChannels, c.filterWidth,
      c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left));
  // The slices' partial tiles summed in order: out[i] = sum over s of partial[s * m * n + i].
  const out = backend.runWebGPUProgram(new StridedSumProgram([c.filterHeight, c.filterWidth, c.inChannels, c.outChannels]), [partial], 'float32',
    stridedSumUniforms(splits, m * n, 1, 0));
  backend.disposeData(partial.dataId);
  return out;
}
