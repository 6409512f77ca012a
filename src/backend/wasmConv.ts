/**
 * The wasm backend's forward convolution as this project's WebAssembly SIMD kernel
 * (simd/kernels.c: pad_dilate, then conv_valid) in place of XNNPACK's: blocks of 4 output columns
 * by 8 output channels keep their sums in f32x4 registers, each weight vector loaded serving 4
 * positions. The input gradient (convGradients.ts) runs on it too. Each output sums its bias and
 * then the taps in (i, j, ci) order: deterministic, as the rest of the step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { replaceKernelWhere } from './kernelComposer';
import { SimdKernels, simdKernels, withScratch } from './simdKernels';
import { WasmBackend, heapAddress } from './wasmHeap';

/** Where the input goes in the zeros conv_valid reads: element (y, x) at (top + y*dilH, left + x*dilW)
 * of an [n, height, width, c] grid; rows and columns past it are dropped. */
export interface InputPlacement {
  top: number;
  left: number;
  dilH: number;
  dilW: number;
  height: number;
  width: number;
}

/**
 * y = the valid convolution, strides (sh, sw), of x as `placement` puts it, with filter
 * [kh, kw, c, o] (+ bias): [n, outH, outW, o]. float32 tensors of the wasm backend.
 */
export function directConv(backend: WasmBackend, simd: SimdKernels, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | undefined,
  placement: InputPlacement, strides: [number, number], out: [number, number]): tf.TensorInfo {
  const [n, h, w, c] = x.shape;
  const [kh, kw, , o] = filter.shape;
  const { top, left, dilH, dilW, height, width } = placement;
  const y = backend.makeOutput([n, out[0], out[1], o], 'float32');
  const run = (input: number) => simd.conv_valid(input, n, height, width, c, heapAddress(backend, filter), kh, kw, o, strides[0], strides[1],
    bias === undefined ? 0 : heapAddress(backend, bias), out[0], out[1], heapAddress(backend, y));
  if (top === 0 && left === 0 && dilH === 1 && dilW === 1 && height === h && width === w) {
    run(heapAddress(backend, x));
  } else {
    withScratch(backend, 4 * n * height * width * c, (padded) => {
      simd.pad_dilate(heapAddress(backend, x), n, h, w, c, dilH, dilW, top, left, height, width, padded);
      run(padded);
    });
  }
  return y;
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

/** The forward convolution's y, or undefined where the direct kernel does not apply (tfjs's then). */
function forward(backend: WasmBackend, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | undefined, attrs: ConvAttrs): tf.TensorInfo | undefined {
  const simd = simdKernels(backend);
  const activation = attrs.activation ?? 'linear';
  if (simd === undefined || attrs.dataFormat !== 'NHWC' || activation !== 'linear') return undefined;
  if ([x, filter, bias].some((t) => t !== undefined && t.dtype !== 'float32')) return undefined;
  const dilations = typeof attrs.dilations === 'number' ? [attrs.dilations, attrs.dilations] : attrs.dilations;
  if (dilations[0] !== 1 || dilations[1] !== 1) return undefined;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
    attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  if (bias !== undefined && tf.util.sizeFromShape(bias.shape) !== info.outChannels) return undefined;
  // Exactly the rows and columns the taps read: (out - 1) * stride + k.
  const placement = { top: padInfo.top, left: padInfo.left, dilH: 1, dilW: 1, height: (outHeight - 1) * strideHeight + filterHeight, width: (outWidth - 1) * strideWidth + filterWidth };
  return directConv(backend, simd, x, filter, bias, placement, [strideHeight, strideWidth], [outHeight, outWidth]);
}

/** Replaces `backendName`'s Conv2D and FusedConv2D (bias, no activation) with the direct kernel;
 * other cases go to tfjs's kernels. Idempotent. */
export function registerDirectConv(backendName: string): void {
  const marker = `__ddpmDirectConv_${backendName}`;
  const g = globalThis as Record<string, unknown>;
  if (g[marker]) return;
  g[marker] = true;
  for (const kernelName of [tf.Conv2D, tf.FusedConv2D]) {
    replaceKernelWhere(kernelName, backendName, function directConv2d({ inputs, attrs, backend }) {
      const { x, filter, bias, preluActivationWeights } = inputs as Record<string, tf.TensorInfo | undefined>;
      return preluActivationWeights === undefined && x !== undefined && filter !== undefined
        ? forward(backend as unknown as WasmBackend, x, filter, bias, attrs as unknown as ConvAttrs)
        : undefined;
    });
  }
}
