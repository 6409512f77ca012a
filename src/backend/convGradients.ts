/**
 * Convolution gradients for the wasm backend, built from its fast XNNPACK forward convolution.
 * tfjs's wasm backend has no Conv2DBackpropFilter and a slow scalar Conv2DBackpropInput
 * (PERFORMANCE.md). Both gradients are themselves convolutions:
 *  - weight gradient: dW[i,j,c,o] = sum_{n,y,x} xpad[n, y*s+i, x*s+j, c] dy[n,y,x,o], i.e. a valid
 *    convolution of xpad viewed as [C, H, W, N] with dy viewed as the filter [outH, outW, N, O],
 *    dilated by the stride;
 *  - input gradient (stride 1): dx = conv(pad(dy), W flipped in space with in/out swapped).
 */
import * as tf from '@tensorflow/tfjs-core';
import { KernelComposer } from './kernelComposer';

type Conv4 = [number, number, number, number];

interface ConvGradAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function conv2dAttrs(dilations: [number, number]) {
  return { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations, dimRoundingMode: undefined };
}

function backpropFilter(k: KernelComposer, x: tf.TensorInfo, dy: tf.TensorInfo, attrs: ConvGradAttrs & { filterShape: Conv4 }): tf.TensorInfo {
  const { filterShape } = attrs;
  const info = tf.backend_util.computeConv2DInfo(x.shape as Conv4, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const [, inH, inW] = x.shape;
  // Exactly the rows and columns the filter taps read: (out - 1) * stride + k.
  const needH = (outHeight - 1) * strideHeight + filterHeight;
  const needW = (outWidth - 1) * strideWidth + filterWidth;
  const padded = k.run(tf.PadV2, { x }, {
    paddings: [[0, 0], [padInfo.top, Math.max(needH - padInfo.top - inH, 0)], [padInfo.left, Math.max(needW - padInfo.left - inW, 0)], [0, 0]],
    constantValue: 0,
  });
  const cropped = padded.shape[1] === needH && padded.shape[2] === needW
    ? padded
    : k.run(tf.Slice, { x: padded }, { begin: [0, 0, 0, 0], size: [x.shape[0], needH, needW, x.shape[3]] });
  const xT = k.run(tf.Transpose, { x: cropped }, { perm: [3, 1, 2, 0] });
  const dyT = k.run(tf.Transpose, { x: dy }, { perm: [1, 2, 0, 3] });
  const dwT = k.run(tf.Conv2D, { x: xT, filter: dyT }, conv2dAttrs([strideHeight, strideWidth]));
  return k.run(tf.Transpose, { x: dwT }, { perm: [1, 2, 0, 3] });
}

function backpropInput(k: KernelComposer, dy: tf.TensorInfo, filter: tf.TensorInfo, attrs: ConvGradAttrs & { inputShape: Conv4 }): tf.TensorInfo | undefined {
  const info = tf.backend_util.computeConv2DInfo(attrs.inputShape, filter.shape as Conv4, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { strideHeight, strideWidth, filterHeight, filterWidth, padInfo, inHeight, inWidth, outHeight, outWidth } = info;
  if (strideHeight !== 1 || strideWidth !== 1) return undefined;
  const top = filterHeight - 1 - padInfo.top;
  const left = filterWidth - 1 - padInfo.left;
  const bottom = inHeight - outHeight + padInfo.top;
  const right = inWidth - outWidth + padInfo.left;
  if (Math.min(top, left, bottom, right) < 0) return undefined;
  const flipped = k.run(tf.Reverse, { x: filter }, { dims: [0, 1] });
  const swapped = k.run(tf.Transpose, { x: flipped }, { perm: [0, 1, 3, 2] });
  const padded = k.run(tf.PadV2, { x: dy }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 });
  return k.run(tf.Conv2D, { x: padded, filter: swapped }, conv2dAttrs([1, 1]));
}

/** Registers (or replaces) both conv gradient kernels on `backendName`. Idempotent. */
export function registerConvGradients(backendName: string): void {
  const marker = `__ddpmConvGradients_${backendName}`;
  const g = globalThis as Record<string, unknown>;
  if (g[marker]) return;
  g[marker] = true;

  if (tf.getKernel(tf.Conv2DBackpropFilter, backendName) !== undefined) tf.unregisterKernel(tf.Conv2DBackpropFilter, backendName);
  tf.registerKernel({
    kernelName: tf.Conv2DBackpropFilter,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const a = attrs as unknown as ConvGradAttrs & { filterShape: Conv4 };
      if (a.dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropFilter on ${backendName}: only NHWC is supported, got ${a.dataFormat}`);
      const k = new KernelComposer(backend as never, backendName);
      const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      return k.finish(backpropFilter(k, x, dy, a));
    },
  });

  const original = tf.getKernel(tf.Conv2DBackpropInput, backendName);
  if (original !== undefined) tf.unregisterKernel(tf.Conv2DBackpropInput, backendName);
  tf.registerKernel({
    kernelName: tf.Conv2DBackpropInput,
    backendName,
    // The wasm fallback binds its native function in setupFunc, run when the backend starts.
    setupFunc: original?.setupFunc,
    kernelFunc: (args) => {
      const a = args.attrs as unknown as ConvGradAttrs & { inputShape: Conv4 };
      const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
      if (a.dataFormat === 'NHWC') {
        const k = new KernelComposer(args.backend as never, backendName);
        const dx = backpropInput(k, dy, filter, a);
        if (dx !== undefined) return k.finish(dx);
        k.finish(undefined);
      }
      if (original === undefined) throw new Error(`Conv2DBackpropInput on ${backendName}: no fallback kernel for stride ${String(a.strides)}`);
      return original.kernelFunc(args);
    },
  });
}
