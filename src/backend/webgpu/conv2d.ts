/**
 * The forward NHWC convolution (Conv2D, and FusedConv2D with a bias and no activation) on webgpu
 * as a tiled implicit matmul: the default (DDPM_WEBGPU_CONV=tfjs keeps tfjs's program). On an
 * H100 it took the replayed ch64 batch-64 step from 66-67 ms to 58-59.
 *
 * out[m, n] = bias[n] + sum_k A[m, k] W[k, n], with m = (b, oy, ox) over the output positions,
 * k = (ky, kx, ci) over the filter's taps and input channels, n = co, and
 * A[m, k] = x[b, oy*sh + ky - padTop, ox*sw + kx - padLeft, ci] (zero outside the input).
 *
 * tfjs's program (Conv2DMMProgram) decodes every vec4 of A it stages from its flat (m, k) with
 * five integer divisions by uniforms (a few dozen instructions each on a GPU, for 128 vector
 * FMAs per thread and tile); it ran the H100 step's forward convolutions at ~16 TFLOP/s. Here a
 * thread's output position m is decoded once, and a 16-wide slab of k lies within one tap
 * (Ci % 16 == 0), so the slab's tap is one division per slab, shared by the workgroup. A 16x16
 * workgroup computes a 64x64 tile (4x4 per thread), staging x as vec4s of 4 channels (16
 * contiguous bytes) and W as vec4s of 4 output channels. Each output is summed over k in order:
 * deterministic.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { int32Uniforms } from './programs';

const TILE = 64;
const SLAB = 16;

/** Whether conv2dTiled computes this convolution (else tfjs's kernel does). */
export function isTiledConv(info: tf.backend_util.Conv2DInfo): boolean {
  return info.dataFormat === 'channelsLast' && info.dilationHeight === 1 && info.dilationWidth === 1
    && info.inChannels % SLAB === 0 && info.outChannels % 4 === 0;
}

class Conv2DTiledProgram implements WebGPUProgram {
  readonly variableNames: string[];
  readonly uniforms = 'M : i32, N : i32, K : i32, outHW : i32, outW : i32, inH : i32, inW : i32, inC : i32, ' +
    'filterW : i32, strideH : i32, strideW : i32, padTop : i32, padLeft : i32,';
  readonly workgroupSize: [number, number, number] = [16, 16, 1];
  readonly dispatchLayout = { x: [3], y: [0, 1, 2] };
  readonly dispatch: [number, number, number];
  readonly shaderKey: string;
  readonly variableComponents: number[];
  readonly outputComponent = 4;

  constructor(readonly outputShape: number[], m: number, n: number, private readonly bias: boolean) {
    this.variableNames = bias ? ['x', 'W', 'bias'] : ['x', 'W'];
    this.variableComponents = bias ? [4, 4, 4] : [4, 4];
    this.dispatch = [Math.ceil(n / TILE), Math.ceil(m / TILE), 1];
    this.shaderKey = `ddpmConv2DTiled_${TILE}_${SLAB}_${bias}`;
  }

  getUserCode(): string {
    return `
      // slabA[m][kq]: 4 consecutive k (channels) of row m; slabB[k][nq]: 4 consecutive n.
      var<workgroup> slabA : array<vec4<f32>, ${(TILE * SLAB) / 4}>;
      var<workgroup> slabB : array<vec4<f32>, ${(TILE * SLAB) / 4}>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let mBase = i32(workgroupId.y) * ${TILE};
        let nBase = i32(workgroupId.x) * ${TILE};
        let t = ty * 16 + tx;
        // Staging: this thread's row of A (output position m, 4 channels at kq) never changes.
        let aRow = t / 4;
        let aQuad = t % 4;
        let m = mBase + aRow;
        let mOk = m < uniforms.M;
        let b = m / uniforms.outHW;
        let r = m - b * uniforms.outHW;
        let oy = r / uniforms.outW;
        let iy0 = oy * uniforms.strideH - uniforms.padTop;
        let ix0 = (r - oy * uniforms.outW) * uniforms.strideW - uniforms.padLeft;
        let inC4 = uniforms.inC / 4;
        let n4 = uniforms.N / 4;
        // ... and its row of W (k within the slab, 4 outputs at nq).
        let bRow = t / 16;
        let bQuad = t % 16;
        let nq = nBase / 4 + bQuad;

        var acc : array<vec4<f32>, 4>;
        for (var kBase = 0; kBase < uniforms.K; kBase = kBase + ${SLAB}) {
          // The slab lies within one tap (Ci % ${SLAB} == 0): the same for the whole workgroup.
          let tap = kBase / uniforms.inC;
          let ky = tap / uniforms.filterW;
          let iy = iy0 + ky;
          let ix = ix0 + tap - ky * uniforms.filterW;
          var a = vec4<f32>(0.0);
          if (mOk && iy >= 0 && iy < uniforms.inH && ix >= 0 && ix < uniforms.inW) {
            a = x[((b * uniforms.inH + iy) * uniforms.inW + ix) * inC4 + (kBase - tap * uniforms.inC) / 4 + aQuad];
          }
          slabA[aRow * ${SLAB / 4} + aQuad] = a;
          var w = vec4<f32>(0.0);
          if (nq < n4) {
            w = W[(kBase + bRow) * n4 + nq];
          }
          slabB[bRow * ${TILE / 4} + bQuad] = w;
          workgroupBarrier();
          for (var kq = 0; kq < ${SLAB / 4}; kq = kq + 1) {
            let b0 = slabB[(kq * 4) * ${TILE / 4} + tx];
            let b1 = slabB[(kq * 4 + 1) * ${TILE / 4} + tx];
            let b2 = slabB[(kq * 4 + 2) * ${TILE / 4} + tx];
            let b3 = slabB[(kq * 4 + 3) * ${TILE / 4} + tx];
            for (var i = 0; i < 4; i = i + 1) {
              let av = slabA[(ty * 4 + i) * ${SLAB / 4} + kq];
              acc[i] = acc[i] + av.x * b0 + av.y * b1 + av.z * b2 + av.w * b3;
            }
          }
          workgroupBarrier();
        }

        let outQ = nBase / 4 + tx;
        if (outQ < n4) {
          for (var i = 0; i < 4; i = i + 1) {
            let row = mBase + ty * 4 + i;
            if (row < uniforms.M) {
              result[row * n4 + outQ] = acc[i]${this.bias ? ' + bias[outQ]' : ''};
            }
          }
        }
      }
    `;
  }
}

/** The NHWC convolution of x [B, H, W, Ci] by filter [kh, kw, Ci, Co], plus bias [Co] if given. */
export function conv2dTiled(backend: WebGPUBackend, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | undefined, c: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const m = c.batchSize * c.outHeight * c.outWidth;
  const n = c.outChannels;
  const k = c.filterHeight * c.filterWidth * c.inChannels;
  const program = new Conv2DTiledProgram(c.outShape, m, n, bias !== undefined);
  return backend.runWebGPUProgram(program, bias ? [x, filter, bias] : [x, filter], 'float32',
    int32Uniforms(m, n, k, c.outHeight * c.outWidth, c.outWidth, c.inHeight, c.inWidth, c.inChannels, c.filterWidth,
      c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left));
}
