/**
 * Sum over a run of adjacent axes that are not the innermost, on webgpu: every bias gradient (dy
 * summed over batch and space, tfjs's getFusedBiasGradient) and the time embedding's broadcast
 * (summed over space). tfjs's webgpu Sum first transposes the input so the reduced axes are
 * innermost (a full strided copy of dy), then reduces each output in one workgroup: for a ch-64
 * bias, 64 workgroups each walking 65,536 values at batch 64. These were 112 of the ch64 step's
 * Sum calls and its 112 transposes; Sum took 17 ms of an H200 step's kernel time
 * (PERFORMANCE.md), PyTorch's whole step 35 ms.
 *
 * Here x is viewed as [outer, rows, cols] with the reduced axes in rows. A pass gives each
 * thread one (chunk of at most 64 rows, outer, col): neighbouring threads read neighbouring
 * columns, so reads are contiguous and nothing is copied; passes repeat on the chunk sums until one
 * chunk is left. Short chunks keep a GPU busy: a ch-64 bias at batch 64 (65,536 rows, 64 columns)
 * is 65,536 threads of 64 reads, then 1,024 of 64, then 64 of 16, where chunks of sqrt(rows) (this
 * kernel before) were 16,384 threads each waiting on 256 reads, then 64 threads on 256. Each sum
 * in a fixed order: the bits do not vary run to run.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { ElementwiseProgram, int32Uniforms } from './programs';

/** Rows a thread sums in one pass. */
export const CHUNK_ROWS = 64;

/** The chunk count of each pass for `rows` rows: ceil(rows / 64), then of that, down to 1. */
export function planRowPasses(rows: number): number[] {
  const passes: number[] = [];
  let left = rows;
  do {
    left = Math.ceil(left / CHUNK_ROWS);
    passes.push(left);
  } while (left > 1);
  return passes;
}

/** out[p, o, c] = sum over r in chunk p, in order, of x[o, r, c]. */
class RowChunkSumProgram extends ElementwiseProgram {
  readonly variableNames = ['x'];
  readonly uniforms = 'rows : i32, cols : i32, outerCols : i32, chunkRows : i32,';
  readonly shaderKey = 'ddpmRowChunkSum';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let chunk = index / uniforms.outerCols;
          let oc = index - chunk * uniforms.outerCols;
          let o = oc / uniforms.cols;
          let c = oc - o * uniforms.cols;
          let first = chunk * uniforms.chunkRows;
          let last = min(first + uniforms.chunkRows, uniforms.rows);
          var total = 0.0;
          for (var r = first; r < last; r = r + 1) {
            // f32(): x may be a float32 tensor that holds int32 data (tfjs casts int32 without a copy).
            total = total + f32(x[(o * uniforms.rows + r) * uniforms.cols + c]);
          }
          setOutputAtIndex(index, total);
        }
      }
    `;
  }
}

/** x (float32, `outer * rows * cols` values) summed over rows, shaped outShape (outer * cols values). */
export function sumRows(backend: WebGPUBackend, x: tf.TensorInfo, outer: number, rows: number, cols: number, outShape: number[]): tf.TensorInfo {
  const width = outer * cols;
  let input = x;
  let left = rows;
  for (const chunks of planRowPasses(rows)) {
    // A pass's chunk sums are the next pass's rows: [chunks, outer * cols] is [1, chunks, width].
    const uniforms = int32Uniforms(left, input === x ? cols : width, width, CHUNK_ROWS);
    const out = backend.runWebGPUProgram(new RowChunkSumProgram(chunks === 1 ? outShape : [chunks, width]), [input], 'float32', uniforms);
    if (input !== x) backend.disposeData(input.dataId);
    input = out;
    left = chunks;
  }
  return input;
}

/**
 * [outer, rows, cols] for a Sum of `shape` over `axes` when the axes are one adjacent run that
 * leaves at least one axis after it; otherwise undefined (tfjs's own Sum: an innermost run needs
 * no transpose, and a split one is rare: the upsampling's gradient).
 */
export function rowSumView(shape: number[], axes: number[]): [number, number, number] | undefined {
  if (axes.length === 0) return undefined;
  const sorted = [...axes].sort((a, b) => a - b);
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  if (last - first + 1 !== sorted.length || last === shape.length - 1) return undefined;
  const size = (from: number, to: number) => shape.slice(from, to).reduce((a, b) => a * b, 1);
  return [size(0, first), size(first, last + 1), size(last + 1, shape.length)];
}
