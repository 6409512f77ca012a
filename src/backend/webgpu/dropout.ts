/** Dropout in WGSL, its mask computed in place from the seed (../dropoutMask.ts's contract). */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { dropoutScale, dropoutThreshold } from '../dropoutMask';
import { ElementwiseProgram } from './programs';

class DropoutProgram extends ElementwiseProgram {
  readonly variableNames = ['x', 'seed'];
  readonly uniforms = 'threshold : u32, scale : f32,';
  readonly shaderKey = 'ddpmDropout';

  getUserCode(): string {
    return `
      fn fmix32(v : u32) -> u32 {
        var h = v;
        h = h ^ (h >> 16u);
        h = h * 0x85ebca6bu;
        h = h ^ (h >> 13u);
        h = h * 0xc2b2ae35u;
        h = h ^ (h >> 16u);
        return h;
      }
      fn main(index : i32) {
        if (index < uniforms.size) {
          let h = fmix32(bitcast<u32>(seed[0]) ^ fmix32(u32(index)));
          let m = select(0.0, uniforms.scale, h >= uniforms.threshold);
          // f32(): x may be a float32 tensor that holds int32 data (tfjs casts int32 without a copy).
          setOutputAtIndex(index, f32(x[index]) * m);
        }
      }
    `;
  }
}

/** x times the mask of `seed` (an int32 tensor of one value: the uint32 seed's bits). */
export function dropoutKernel(backend: WebGPUBackend, x: tf.TensorInfo, seed: tf.TensorInfo, rate: number): tf.TensorInfo {
  const uniforms = [{ type: 'uint32', data: [dropoutThreshold(rate)] }, { type: 'float32', data: [dropoutScale(rate)] }];
  return backend.runWebGPUProgram(new DropoutProgram(x.shape), [x, seed], 'float32', uniforms);
}
