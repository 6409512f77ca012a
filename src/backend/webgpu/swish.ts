/** swish(x) = x sigmoid(x) and its gradient in WGSL (fusedKernels.ts's DdpmSwish, DdpmSwishGrad). */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { ElementwiseProgram, SWISH_WGSL } from './programs';

class SwishProgram extends ElementwiseProgram {
  readonly variableNames: string[];
  readonly uniforms = '';
  readonly shaderKey: string;

  constructor(outputShape: number[], private readonly gradient: boolean) {
    super(outputShape);
    this.variableNames = gradient ? ['dy', 'x'] : ['x'];
    this.shaderKey = `ddpmSwish_${gradient}`;
  }

  getUserCode(): string {
    return `${SWISH_WGSL}
      fn main(index : i32) {
        if (index < uniforms.size) {
          let v = x[index];
          ${this.gradient ? 'setOutputAtIndex(index, swishGrad(dy[index], v));' : 'setOutputAtIndex(index, v * sigmoid(v));'}
        }
      }
    `;
  }
}

/** x sigmoid(x), or its gradient dy s (1 + x (1 - s)). */
export function swishKernel(backend: WebGPUBackend, x: tf.TensorInfo, dy?: tf.TensorInfo): tf.TensorInfo {
  const gradient = dy !== undefined;
  return backend.runWebGPUProgram(new SwishProgram(x.shape, gradient), gradient ? [dy, x] : [x], 'float32');
}
