/**
 * Convolution gradients for the wasm backend, on this project's WebAssembly SIMD kernels. tfjs's
 * wasm backend has no Conv2DBackpropFilter and a slow scalar Conv2DBackpropInput (PERFORMANCE.md).
 * Both gradients are themselves convolutions:
 *  - weight gradient: dW[i,j,c,o] = sum_{n,y,x} x[n, y*s+i-top, x*s+j-left, c] dy[n,y,x,o], taps in
 *    the padding skipped: a WebAssembly SIMD kernel (simd/kernels.c, conv_filter_grad) keeps each
 *    block of 4 input by 8 output channels' sums in f32x4 registers over the output positions,
 *    examples in cache-sized chunks; no padded copies, no arithmetic on zeros. 31-49 GFLOP/s on
 *    the U-Net's shapes, 1.5-7x the XNNPACK forms it replaced (k*k matmuls over a padded
 *    channel-major copy; a convolution with dy as the filter). Without wasm SIMD, the latter:
 *    a valid convolution of xpad viewed as [C, H, W, N] with dy as the filter [outH, outW, N, O],
 *    dilated by the stride;
 *  - input gradient: dx = the valid convolution of dy, dilated by the strides (s - 1 zeros between
 *    neighbours) and padded by k - 1 - pad, with W flipped in space and in/out swapped, on the
 *    forward convolution's SIMD kernel (wasmConv.ts). At stride 2 it multiplies many zeros (3/4 of
 *    them), still faster than tfjs's scalar kernel (~2.4 GFLOP/s, scripts/step-bench --kernels).
 */
import * as tf from '@tensorflow/tfjs-core';
import { KernelComposer, replaceKernel, replaceKernelWhere } from './kernelComposer';
import { simdKernels } from './simdKernels';
import { directConv } from './wasmConv';
import { WasmBackend, heapAddress } from './wasmHeap';

export type Conv4 = [number, number, number, number];

export interface ConvGradAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function conv2dAttrs(dilations: [number, number]) {
  return { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations, dimRoundingMode: undefined };
}

/** The weight gradient's form and chunk: tests change them to reach every path with small
 * tensors. `direct`: the SIMD kernel (else the convolution form); `chunkFloats`: floats of x and dy
 * per chunk of examples (256 KiB: the k*k*(c/4)*(o/8) passes over a chunk then read it from the
 * 1 MiB L2 caches measured: 32x32x64 -> 64 at batch 16 took 70 ms in one chunk, 36 in these). */
export const convGradientTuning = { direct: true, chunkFloats: 65536 };

function backpropFilter(k: KernelComposer, backend: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, attrs: ConvGradAttrs & { filterShape: Conv4 }): tf.TensorInfo {
  const { filterShape } = attrs;
  const info = tf.backend_util.computeConv2DInfo(x.shape as Conv4, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const [n, inH, inW, c] = x.shape;
  const o = dy.shape[3];
  const simd = simdKernels(backend);
  if (x.dtype === 'float32' && dy.dtype === 'float32' && simd !== undefined && convGradientTuning.direct) {
    const dw = backend.makeOutput([filterHeight, filterWidth, c, o], 'float32');
    const chunk = Math.max(1, Math.floor(convGradientTuning.chunkFloats / (inH * inW * c + outHeight * outWidth * o)));
    simd.conv_filter_grad(heapAddress(backend, x), heapAddress(backend, dy), n, inH, inW, c, outHeight, outWidth, o,
      filterHeight, filterWidth, strideHeight, strideWidth, padInfo.top, padInfo.left, chunk, heapAddress(backend, dw));
    return dw;
  }
  // The convolution form. Exactly the rows and columns the filter taps read: (out - 1) * stride + k.
  const needH = (outHeight - 1) * strideHeight + filterHeight;
  const needW = (outWidth - 1) * strideWidth + filterWidth;
  const padded = k.run(tf.PadV2, { x }, {
    paddings: [[0, 0], [padInfo.top, Math.max(needH - padInfo.top - inH, 0)], [padInfo.left, Math.max(needW - padInfo.left - inW, 0)], [0, 0]],
    constantValue: 0,
  });
  const cropped = padded.shape[1] === needH && padded.shape[2] === needW
    ? padded
    : k.run(tf.Slice, { x: padded }, { begin: [0, 0, 0, 0], size: [n, needH, needW, c] });
  const xT = k.run(tf.Transpose, { x: cropped }, { perm: [3, 1, 2, 0] });
  const dyT = k.run(tf.Transpose, { x: dy }, { perm: [1, 2, 0, 3] });
  const dwT = k.run(tf.Conv2D, { x: xT, filter: dyT }, conv2dAttrs([strideHeight, strideWidth]));
  return k.run(tf.Transpose, { x: dwT }, { perm: [1, 2, 0, 3] });
}

/** W [kh, kw, C, O] flipped in space with in/out swapped: out[i, j, o, c] = W[kh-1-i, kw-1-j, c, o],
 * in one pass (tfjs's wasm Reverse took ~30 ns per element: 4.6 ms for a 3x3x128x128 filter). */
function flipSwap(backend: WasmBackend, filter: tf.TensorInfo): tf.TensorInfo {
  const [kh, kw, c, o] = filter.shape;
  const out = backend.makeOutput([kh, kw, o, c], 'float32');
  const src = backend.typedArrayFromHeap(filter);
  const dst = backend.typedArrayFromHeap(out);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const from = ((kh - 1 - i) * kw + (kw - 1 - j)) * c * o;
      const to = (i * kw + j) * o * c;
      for (let co = 0; co < o; co++) {
        for (let ci = 0; ci < c; ci++) dst[to + co * c + ci] = src[from + ci * o + co];
      }
    }
  }
  return out;
}

function backpropInput(k: KernelComposer, backend: WasmBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, attrs: ConvGradAttrs & { inputShape: Conv4 }): tf.TensorInfo | undefined {
  const info = tf.backend_util.computeConv2DInfo(attrs.inputShape, filter.shape as Conv4, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { strideHeight, strideWidth, filterHeight, filterWidth, padInfo, inHeight, inWidth } = info;
  const top = filterHeight - 1 - padInfo.top;
  const left = filterWidth - 1 - padInfo.left;
  if (Math.min(top, left) < 0 || dy.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
  const simd = simdKernels(backend);
  if (simd === undefined) return undefined;
  const swapped = k.adopt(flipSwap(backend, filter));
  // dy dilated by the strides (s - 1 zeros between neighbours) at (top, left) in zeros of
  // inH + kh - 1 rows: its valid convolution gives the inH rows of dx. dy rows placed past the
  // bottom (or columns past the right) only reach rows of dx past inH: dropped.
  const placement = { top, left, dilH: strideHeight, dilW: strideWidth, height: inHeight + filterHeight - 1, width: inWidth + filterWidth - 1 };
  return directConv(backend, simd, dy, swapped, undefined, placement, [1, 1], [inHeight, inWidth]);
}

/** Registers (or replaces) both conv gradient kernels on `backendName`. Idempotent. */
export function registerConvGradients(backendName: string): void {
  const marker = `__ddpmConvGradients_${backendName}`;
  const g = globalThis as Record<string, unknown>;
  if (g[marker]) return;
  g[marker] = true;

  replaceKernel(tf.Conv2DBackpropFilter, backendName, () => ({
    kernelName: tf.Conv2DBackpropFilter,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const a = attrs as unknown as ConvGradAttrs & { filterShape: Conv4 };
      if (a.dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropFilter on ${backendName}: only NHWC is supported, got ${a.dataFormat}`);
      const k = new KernelComposer(backend as never, backendName);
      const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      return k.finish(backpropFilter(k, backend as unknown as WasmBackend, x, dy, a));
    },
  }));

  replaceKernelWhere(tf.Conv2DBackpropInput, backendName, function convInputGradient({ inputs, attrs, backend }) {
    const a = attrs as unknown as ConvGradAttrs & { inputShape: Conv4 };
    const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    if (a.dataFormat !== 'NHWC') return undefined;
    const k = new KernelComposer(backend as never, backendName);
    const dx = backpropInput(k, backend as unknown as WasmBackend, dy, filter, a);
    if (dx !== undefined) return k.finish(dx);
    k.finish(undefined);
    return undefined;
  });
}
