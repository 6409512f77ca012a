/**
 * The conv input gradient (Conv2DBackpropInput) at stride 1 as a forward convolution: dx =
 * conv2d(dy, W'), W'[ky, kx, o, i] = W[kh-1-ky, kw-1-kx, i, o], padded kh-1-top above,
 * kh-1-bottom below (and so across). tfjs's own input-gradient program is the same tiled matmul as
 * its forward convolution, but reads each vec4 of W as four strided scalars and finds dy's row
 * with float division: on an H100 it ran the ch64 step's input gradients at ~10 TFLOP/s (21 ms of
 * the step's 74 ms of kernels) where its forward convolutions ran at ~16. Here one small program
 * flips and transposes W, and tfjs's forward convolution does the rest. Stride 2 stays with
 * tfjs's kernel (a strided input gradient is not a plain convolution).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { KernelComposer } from '../kernelComposer';
import { ElementwiseProgram, int32Uniforms } from './programs';

/** out[ky, kx, o, i] = W[kh-1-ky, kw-1-kx, i, o]. */
class FilterFlipTransposeProgram extends ElementwiseProgram {
  readonly variableNames = ['W'];
  readonly uniforms = 'kh : i32, kw : i32, ci : i32, co : i32,';
  readonly shaderKey = 'ddpmFilterFlipTranspose';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let i = index % uniforms.ci;
          let o = (index / uniforms.ci) % uniforms.co;
          let kx = (index / (uniforms.ci * uniforms.co)) % uniforms.kw;
          let ky = index / (uniforms.ci * uniforms.co * uniforms.kw);
          let source = (((uniforms.kh - 1 - ky) * uniforms.kw + (uniforms.kw - 1 - kx)) * uniforms.ci + i) * uniforms.co + o;
          setOutputAtIndex(index, W[source]);
        }
      }
    `;
  }
}

/** Whether convInputGradient computes this gradient (else tfjs's kernel does). */
export function isPlainConvInputGradient(info: tf.backend_util.Conv2DInfo): boolean {
  return info.dataFormat === 'channelsLast' && info.strideHeight === 1 && info.strideWidth === 1 && info.dilationHeight === 1 && info.dilationWidth === 1
    && info.padInfo.top <= info.filterHeight - 1 && info.padInfo.bottom <= info.filterHeight - 1
    && info.padInfo.left <= info.filterWidth - 1 && info.padInfo.right <= info.filterWidth - 1;
}

/** dL/dx of a stride-1 NHWC conv2d, from dy and the filter [kh, kw, ci, co]. */
export function convInputGradient(backend: WebGPUBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { filterHeight: kh, filterWidth: kw, inChannels: ci, outChannels: co, padInfo } = info;
  const k = new KernelComposer(backend as never, 'webgpu');
  const flipped = k.adopt(backend.runWebGPUProgram(new FilterFlipTransposeProgram([kh, kw, co, ci]), [filter], 'float32', int32Uniforms(kh, kw, ci, co)));
  const pad = [[0, 0], [kh - 1 - padInfo.top, kh - 1 - padInfo.bottom], [kw - 1 - padInfo.left, kw - 1 - padInfo.right], [0, 0]];
  const dx = k.run(tf.Conv2D, { x: dy, filter: flipped }, { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1] });
  return k.finish(dx);
}
