/**
 * Faster wasm kernels for what a U-Net training step spends its time on (scripts/step-bench,
 * README "Worker compute speed"). Each replaces tfjs-backend-wasm 4.22's kernel of the same name
 * for the cases it handles and hands every other case to the original:
 *  - BatchMatMul: the original runs XNNPACK only for one un-transposed matrix pair and otherwise
 *    a scalar loop (~2 GFLOP/s, against ~30 for XNNPACK). Here transposed operands are made
 *    explicit with one Transpose, and a batch runs as one XNNPACK matmul per matrix over views
 *    into the batch (no copies), or as a single matmul when the right operand is shared.
 *  - Identity: the original copies the tensor; the engine calls it to save every tensor a
 *    gradient needs, so a training step copied most of its activations once more. Here it shares
 *    the data (reference counted, as the cpu backend and wasm's own Reshape do).
 *  - Sum over leading axes (bias and broadcast gradients): the original transposes the reduced
 *    axes to the end first; here it is one SIMD pass (src/backend/simd), summing in float64.
 *  - Concat and SplitV (the U-Net's skip connections and their gradient): the original copies
 *    each row with a new subarray; here short rows are copied element by element.
 * All are deterministic: the same inputs give the same bits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { KernelComposer, replaceKernelWhere } from './kernelComposer';
import { simdKernels, withScratch } from './simdKernels';
import { WasmBackend, heapAddress, heapView, releaseView, xnnMatMul } from './wasmHeap';

function registerBatchMatMul(backendName: string): void {
  replaceKernelWhere(tf.BatchMatMul, backendName, function batchMatMul(args) {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const backend = args.backend as unknown as WasmBackend;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
    const aRank = a.shape.length;
    const bRank = b.shape.length;
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    const m = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
    const k = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
    const kb = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
    const n = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
    const batch = Math.max(batchA, batchB);
    // The original's fast path, broadcasting it does not do, and empty or degenerate shapes.
    if ((batch === 1 && !transposeA && !transposeB) || k !== kb || (batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1) || m * n * k === 0) return undefined;
    const outShape = [...tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2)), m, n];

    const composer = new KernelComposer(backend as never, backendName);
    // Row-major [batch, m, k] and [batch, k, n] operands.
    const a3 = { dataId: a.dataId, dtype: a.dtype, shape: transposeA ? [batchA, k, m] : [batchA, m, k] };
    const b3 = { dataId: b.dataId, dtype: b.dtype, shape: transposeB ? [batchB, n, k] : [batchB, k, n] };
    const left = transposeA ? composer.run(tf.Transpose, { x: a3 }, { perm: [0, 2, 1] }) : a3;
    const right = transposeB ? composer.run(tf.Transpose, { x: b3 }, { perm: [0, 2, 1] }) : b3;
    const out = backend.makeOutput([batch, m, n], 'float32');
    if (batchB === 1 && batchA === batch) {
      // One shared right operand: all left rows in one matmul (XNNPACK caches the packed right
      // operand on its tensor id, so a parameter's packing is reused across steps).
      const aView = heapView(backend, left, 0, [1, batch * m, k]);
      const outView = heapView(backend, out, 0, [1, batch * m, n]);
      xnnMatMul(backend, aView, right, outView, batch * m, k, n);
      releaseView(backend, aView);
      releaseView(backend, outView);
    } else {
      for (let i = 0; i < batch; i++) {
        const aView = heapView(backend, left, batchA === 1 ? 0 : i * m * k, [1, m, k]);
        const bView = heapView(backend, right, batchB === 1 ? 0 : i * k * n, [1, k, n]);
        const outView = heapView(backend, out, i * m * n, [1, m, n]);
        xnnMatMul(backend, aView, bView, outView, m, k, n);
        releaseView(backend, aView);
        releaseView(backend, bView);
        releaseView(backend, outView);
      }
    }
    composer.finish(undefined);
    return { dataId: out.dataId, dtype: out.dtype, shape: outShape };
  });
}

function registerIdentity(backendName: string): void {
  replaceKernelWhere(tf.Identity, backendName, function sharedIdentity({ inputs, backend }) {
    const { x } = inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') return undefined;
    (backend as unknown as WasmBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
}

function registerSum(backendName: string): void {
  replaceKernelWhere(tf.Sum, backendName, function leadingSum(args) {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const backend = args.backend as unknown as WasmBackend;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((ax, i) => ax === i);
    const simd = simdKernels(backend);
    if (x.dtype !== 'float32' || !leading || tf.util.sizeFromShape(x.shape) === 0 || simd === undefined) return undefined;
    const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
    const kept = x.shape.slice(axes.length);
    const out = backend.makeOutput(keepDims ? [...axes.map(() => 1), ...kept] : kept, 'float32');
    const cols = tf.util.sizeFromShape(kept);
    withScratch(backend, 8 * cols, (scratch) => simd.sum_rows(heapAddress(backend, x), rows, cols, heapAddress(backend, out), scratch));
    return out;
  });
}

/** Copies `len` floats (short runs by hand: a subarray per run costs more than the copy). */
function copyRun(src: Float32Array, from: number, dst: Float32Array, to: number, len: number): void {
  if (len >= 256) {
    dst.set(src.subarray(from, from + len), to);
    return;
  }
  for (let j = 0; j < len; j++) dst[to + j] = src[from + j];
}

function registerConcat(backendName: string): void {
  replaceKernelWhere(tf.Concat, backendName, function concatRows(args) {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const backend = args.backend as unknown as WasmBackend;
    const axis = tf.util.parseAxisParam((args.attrs as unknown as { axis: number }).axis, inputs[0].shape)[0];
    if (inputs.length < 2 || inputs.some((t) => t.dtype !== 'float32' || tf.util.sizeFromShape(t.shape) === 0)) return undefined;
    tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), axis);
    const out = backend.makeOutput(tf.backend_util.computeOutShape(inputs.map((t) => t.shape), axis), 'float32');
    const rows = tf.util.sizeFromShape(inputs[0].shape.slice(0, axis));
    const inner = inputs.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)));
    const total = inner.reduce((p, q) => p + q, 0);
    const srcs = inputs.map((t) => backend.typedArrayFromHeap(t));
    const dst = backend.typedArrayFromHeap(out);
    for (let r = 0; r < rows; r++) {
      let to = r * total;
      for (let i = 0; i < srcs.length; i++) {
        copyRun(srcs[i], r * inner[i], dst, to, inner[i]);
        to += inner[i];
      }
    }
    return out;
  });
}

function registerSplitV(backendName: string): void {
  replaceKernelWhere(tf.SplitV, backendName, function splitRows(args) {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const backend = args.backend as unknown as WasmBackend;
    if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) === 0) return undefined;
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax) as number[];
    const after = tf.util.sizeFromShape(x.shape.slice(ax + 1));
    const rows = tf.util.sizeFromShape(x.shape.slice(0, ax));
    const total = x.shape[ax] * after;
    const outs = sizes.map((size) => backend.makeOutput(x.shape.map((d, i) => (i === ax ? size : d)), 'float32'));
    const src = backend.typedArrayFromHeap(x);
    let start = 0;
    outs.forEach((out, i) => {
      const len = sizes[i] * after;
      const dst = backend.typedArrayFromHeap(out);
      for (let r = 0; r < rows; r++) copyRun(src, r * total + start, dst, r * len, len);
      start += len;
    });
    return outs;
  });
}

/** Replaces BatchMatMul, Identity, Sum, Concat and SplitV on the wasm backend. Idempotent. */
export function registerWasmKernels(backendName = 'wasm'): void {
  const marker = `__ddpmWasmKernels_${backendName}`;
  const g = globalThis as Record<string, unknown>;
  if (g[marker]) return;
  g[marker] = true;
  registerBatchMatMul(backendName);
  registerIdentity(backendName);
  registerSum(backendName);
  registerConcat(backendName);
  registerSplitV(backendName);
}
