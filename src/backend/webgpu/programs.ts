/** What this project's WGSL programs share (tfjs's WebGPUProgram contract). */
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/** A thread per output element (`fn main(index : i32)`), or per given count, in workgroups of 64. */
export abstract class ElementwiseProgram implements WebGPUProgram {
  abstract readonly variableNames: string[];
  abstract readonly shaderKey: string;
  readonly workgroupSize: [number, number, number] = [64, 1, 1];
  readonly size = true;
  readonly dispatchLayout: { x: number[] };
  readonly dispatch: [number, number, number];
  abstract readonly uniforms: string;

  /** `threads`: how many to start, when a thread writes several outputs (default: one each). */
  constructor(readonly outputShape: number[], threads = outputShape.reduce((a, b) => a * b, 1)) {
    this.dispatchLayout = { x: outputShape.map((_, i) => i) };
    const groups = Math.ceil(threads / 64);
    // Past 65,535 workgroups in x, fold into y (a WebGPU limit per dimension).
    this.dispatch = groups > 65535 ? [65535, Math.ceil(groups / 65535), 1] : [groups, 1, 1];
  }

  abstract getUserCode(): string;
}

/** sigmoid(v), and swishGrad(dy, z) = dy times the derivative of z sigmoid(z). */
export const SWISH_WGSL = `
  fn sigmoid(v : f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
  // d/dz of z sigmoid(z), times dy.
  fn swishGrad(dy : f32, z : f32) -> f32 {
    let s = sigmoid(z);
    return dy * s * (1.0 + z * (1.0 - s));
  }
`;

/**
 * out[i] = sum over s < count, in order, of input[s * outerStride + i * innerStride + offset]:
 * the weight gradient's slices (outer stride = the output's size) and GroupNorm's per-example
 * channel sums (fields of coef). A fixed order, so the bits do not vary run to run.
 */
export class StridedSumProgram extends ElementwiseProgram {
  readonly variableNames = ['input'];
  readonly uniforms = 'count : i32, outerStride : i32, innerStride : i32, offset : i32,';
  readonly shaderKey = 'ddpmStridedSum';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          var total = 0.0;
          for (var s = 0; s < uniforms.count; s = s + 1) {
            total = total + input[s * uniforms.outerStride + index * uniforms.innerStride + uniforms.offset];
          }
          setOutputAtIndex(index, total);
        }
      }
    `;
  }
}

/** A program's i32 uniforms, in the order its `uniforms` declares them. */
export function int32Uniforms(...values: number[]): Array<{ type: string; data: number[] }> {
  return values.map((v) => ({ type: 'int32', data: [v] }));
}

export function stridedSumUniforms(count: number, outerStride: number, innerStride: number, offset: number): Array<{ type: string; data: number[] }> {
  return int32Uniforms(count, outerStride, innerStride, offset);
}
