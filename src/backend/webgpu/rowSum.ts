/**
 * Sum over a run of adjacent axes that are not the innermost, on webgpu: every bias gradient (dy
 * summed over batch and space, tfjs's getFusedBiasGradient) and the time embedding's broadcast
 * (summed over space). tfjs's webgpu Sum first transposes the input so the reduced axes are
 * innermost (a full strided copy of dy), then reduces each output in one workgroup: for a ch-64
 * bias, 64 workgroups each walking 65,536 values at batch 64. These were 112 of the ch64 step's
 * Sum calls and its 112 transposes; Sum took 17 ms of an H200 step's kernel time
 * (PERFORMANCE.md), PyTorch's whole step 35 ms.
 *
 * Here x is viewed as [outer, rows, cols] with the reduced axes in rows. Pass 1 gives each thread
 * one (chunk of rows, outer, col): neighbouring threads read neighbouring columns, so reads are
 * contiguous and nothing is copied; pass 2 sums each output's chunks in order. Chunks are about
 * sqrt(rows) long, so both passes' loops are short. A fixed order: the bits do not vary run to run.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { ElementwiseProgram, StridedSumProgram, int32Uniforms, stridedSumUniforms } from './programs';

/** Shorter chunks spend more on pass 2's reads than they save in pass 1. */
const MIN_CHUNK_ROWS = 32;

export interface RowSumPlan {
  chunks: number;
  chunkRows: number;
}

/** Chunks of about sqrt(rows) rows, none shorter than MIN_CHUNK_ROWS but the last; one chunk
 * (one pass) below two chunks' worth. */
export function planRowChunks(rows: number): RowSumPlan {
  const wanted = Math.max(1, Math.floor(rows / Math.max(MIN_CHUNK_ROWS, Math.ceil(Math.sqrt(rows)))));
  const chunkRows = Math.ceil(rows / wanted);
  return { chunks: Math.ceil(rows / chunkRows), chunkRows };
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
  const { chunks, chunkRows } = planRowChunks(rows);
  const uniforms = int32Uniforms(rows, cols, outer * cols, chunkRows);
  if (chunks === 1) return backend.runWebGPUProgram(new RowChunkSumProgram(outShape), [x], 'float32', uniforms);
  const partial = backend.runWebGPUProgram(new RowChunkSumProgram([chunks, outer * cols]), [x], 'float32', uniforms);
  const out = backend.runWebGPUProgram(new StridedSumProgram(outShape), [partial], 'float32', stridedSumUniforms(chunks, outer * cols, 1, 0));
  backend.disposeData(partial.dataId);
  return out;
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
