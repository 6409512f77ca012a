/**
 * Convolution gradients for the wasm backend, built from its fast XNNPACK forward convolution.
 * tfjs's wasm backend has no Conv2DBackpropFilter and a slow scalar Conv2DBackpropInput
 * (PERFORMANCE.md). Both gradients are themselves convolutions:
 *  - weight gradient: dW[i,j,c,o] = sum_{n,y,x} xpad[n, y*s+i, x*s+j, c] dy[n,y,x,o]. With xpad
 *    laid out channel-major, X[c, p] for p = n*Hp*Wp + y'*Wp + x' over the padded grid, and dy
 *    scattered into the rows p = n*Hp*Wp + s*y*Wp + s*x of an otherwise zero D[p, o], each tap is
 *    one matmul with a long inner dimension: dW[i,j] = X[:, p + i*Wp + j] D (a view of X shifted
 *    by i*Wp + j: rows of D that are zero absorb what the shift drags in from the next row or
 *    example). XNNPACK packs D once for all k*k taps. The zero rows cost Hp*Wp/(H*W) more
 *    arithmetic (1.13x at 32x32, 1.27x at 16x16, 1.56x at 8x8, ~4x at stride 2). Above 1.3x, or
 *    for fewer than 32 channels, the older form is faster: a valid convolution of xpad viewed as
 *    [C, H, W, N] with dy as the filter [outH, outW, N, O], dilated by the stride (its inner
 *    dimension is only N per tap);
 *  - input gradient: dx = conv(pad(dy), W flipped in space with in/out swapped) for stride 1; for
 *    stride s the same over dy dilated by s (s - 1 zeros between neighbours), built in one pass.
 *    The dilated convolution multiplies many zeros (3/4 of them at stride 2), but runs in XNNPACK
 *    at ~27 GFLOP/s, where tfjs's own kernel ran at ~2.4 (scripts/step-bench --kernels).
 */
import * as tf from '@tensorflow/tfjs-core';
import { KernelComposer, replaceKernel } from './kernelComposer';
import { WasmBackend, heapView, releaseView, xnnMatMul } from './wasmHeap';

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

/** Inner-dimension chunk of the weight-gradient matmuls: XNNPACK streams the whole right operand
 * for every few rows of the left one; chunks keep it in cache (in isolation ~26 GFLOP/s against
 * ~20 for one [64 x 18,496] x [18,496 x 64] product; in the U-Net's gradients 0-20% faster). */
/** Thresholds of the weight gradient's forms; tests change them to reach every path with small
 * tensors. */
export const convGradientTuning = { chunk: 4096, maxPadding: 1.3, minChannels: 32 };

/**
 * The weight gradient as k*k matmuls per chunk of the padded positions (see the file comment).
 * Chunk q covers positions [q*chunk, q*chunk + size) and holds, per channel, those positions and
 * the `halo` = (kh-1)*Wp + kw-1 after them, so that every tap's shifted operand is a contiguous
 * [C, size + halo] view of the chunk; D's chunk has `halo` zero rows after its `size` rows, which
 * cancel what the shift drags in. D's chunk is packed once for all taps.
 */
function backpropFilterGemm(k: KernelComposer, backend: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const [n, inH, inW, c] = x.shape;
  const o = dy.shape[3];
  const hp = (outHeight - 1) * strideHeight + filterHeight;
  const wp = (outWidth - 1) * strideWidth + filterWidth;
  const plane = hp * wp;
  const len = n * plane;
  const halo = (filterHeight - 1) * wp + filterWidth - 1;
  const chunk = convGradientTuning.chunk;
  const chunks = len <= 1.5 * chunk ? 1 : Math.ceil(len / chunk);
  const step = chunks === 1 ? len : chunk;
  const sizeOf = (q: number) => Math.min(step, len - q * step);
  // Chunk q of X starts at xOff[q] (c rows of sizeOf(q) + halo, then halo floats of slack for the
  // last row's shifted read); chunk q of D starts at dOff[q] (sizeOf(q) + halo rows of o).
  const xOff: number[] = [];
  const dOff: number[] = [];
  let xTotal = 0;
  let dTotal = 0;
  for (let q = 0; q < chunks; q++) {
    xOff.push(xTotal);
    dOff.push(dTotal);
    xTotal += c * (sizeOf(q) + halo) + halo;
    dTotal += (sizeOf(q) + halo) * o;
  }
  // X channel-major over the padded grid: xt[ch*len + b*plane + (y + top)*wp + xx + left] =
  // x[b, y, xx, ch] (contiguous writes, reads strided by c); chunked copies of it when chunks > 1.
  const xt = k.adopt(backend.makeOutput([c * len + halo], 'float32'));
  const xb = chunks > 1 ? k.adopt(backend.makeOutput([xTotal], 'float32')) : xt;
  const d = k.adopt(backend.makeOutput([dTotal], 'float32'));
  const partial = chunks > 1 ? k.adopt(backend.makeOutput([c * o], 'float32')) : undefined;
  const dw = backend.makeOutput([filterHeight, filterWidth, c, o], 'float32');
  {
    const xs = backend.typedArrayFromHeap(x);
    const xtA = backend.typedArrayFromHeap(xt);
    xtA.fill(0);
    const rows = Math.min(inH, hp - padInfo.top);
    const cols = Math.min(inW, wp - padInfo.left);
    for (let ch = 0; ch < c; ch++) {
      for (let b = 0; b < n; b++) {
        for (let y = 0; y < rows; y++) {
          let src = ((b * inH + y) * inW) * c + ch;
          let dst = ch * len + b * plane + (y + padInfo.top) * wp + padInfo.left;
          for (let xx = 0; xx < cols; xx++, src += c, dst++) xtA[dst] = xs[src];
        }
      }
    }
    if (chunks > 1) {
      const xbA = backend.typedArrayFromHeap(xb);
      xbA.fill(0);
      for (let q = 0; q < chunks; q++) {
        const rowLen = sizeOf(q) + halo;
        const copy = Math.min(rowLen, len - q * step);
        for (let ch = 0; ch < c; ch++) {
          const from = ch * len + q * step;
          xbA.set(xtA.subarray(from, from + copy), xOff[q] + ch * rowLen);
        }
      }
    }
    const dys = backend.typedArrayFromHeap(dy);
    const dA = backend.typedArrayFromHeap(d);
    dA.fill(0);
    for (let b = 0; b < n; b++) {
      for (let y = 0; y < outHeight; y++) {
        for (let xx = 0; xx < outWidth; xx++) {
          const p = b * plane + y * strideHeight * wp + xx * strideWidth;
          const q = Math.floor(p / step);
          const src = ((b * outHeight + y) * outWidth + xx) * o;
          const dst = dOff[q] + (p - q * step) * o;
          for (let ch = 0; ch < o; ch++) dA[dst + ch] = dys[src + ch];
        }
      }
    }
  }
  for (let q = 0; q < chunks; q++) {
    const kq = chunks === 1 ? len : sizeOf(q) + halo;
    const dq = heapView(backend, d, dOff[q], [kq, o]);
    for (let i = 0; i < filterHeight; i++) {
      for (let j = 0; j < filterWidth; j++) {
        const tap = (i * filterWidth + j) * c * o;
        const a = heapView(backend, xb, xOff[q] + i * wp + j, [c, kq]);
        const out = q === 0 ? heapView(backend, dw, tap, [c, o]) : heapView(backend, partial as tf.TensorInfo, 0, [c, o]);
        xnnMatMul(backend, a, dq, out, c, kq, o);
        releaseView(backend, a);
        releaseView(backend, out);
        if (q > 0) {
          const dwA = backend.typedArrayFromHeap(dw);
          const pA = backend.typedArrayFromHeap(partial as tf.TensorInfo);
          for (let e = 0; e < c * o; e++) dwA[tap + e] += pA[e];
        }
      }
    }
    releaseView(backend, dq);
  }
  return dw;
}

function backpropFilter(k: KernelComposer, backend: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, attrs: ConvGradAttrs & { filterShape: Conv4 }): tf.TensorInfo {
  const { filterShape } = attrs;
  const info = tf.backend_util.computeConv2DInfo(x.shape as Conv4, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const needH = (outHeight - 1) * strideHeight + filterHeight;
  const needW = (outWidth - 1) * strideWidth + filterWidth;
  // The matmul form where its padding costs little and the operands are wide enough for
  // XNNPACK's matmul; measured per shape with `npm run bench:step -- --kernels` (both directions
  // within ~10-20% of each other elsewhere).
  const gemm = needH * needW <= convGradientTuning.maxPadding * outHeight * outWidth && Math.min(x.shape[3], dy.shape[3]) >= convGradientTuning.minChannels;
  if (x.dtype === 'float32' && dy.dtype === 'float32' && gemm) return backpropFilterGemm(k, backend, x, dy, info);
  const [, inH, inW] = x.shape;
  // Exactly the rows and columns the filter taps read: (out - 1) * stride + k.
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

/**
 * dy [N, H, W, C] dilated by the strides and placed at (top, left) in zeros of [N, outH, outW, C];
 * positions past the bottom or right edge are dropped (they never reach dx).
 */
function dilatePad(backend: WasmBackend, dy: tf.TensorInfo, strideH: number, strideW: number, top: number, left: number, outH: number, outW: number): tf.TensorInfo {
  const [n, h, w, c] = dy.shape;
  const out = backend.makeOutput([n, outH, outW, c], 'float32');
  const o = backend.typedArrayFromHeap(out);
  const d = backend.typedArrayFromHeap(dy);
  o.fill(0);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      const py = top + y * strideH;
      if (py >= outH) break;
      for (let x = 0; x < w; x++) {
        const px = left + x * strideW;
        if (px >= outW) break;
        const src = ((b * h + y) * w + x) * c;
        const dst = ((b * outH + py) * outW + px) * c;
        for (let ch = 0; ch < c; ch++) o[dst + ch] = d[src + ch];
      }
    }
  }
  return out;
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
  const { strideHeight, strideWidth, filterHeight, filterWidth, padInfo, inHeight, inWidth, outHeight, outWidth } = info;
  const top = filterHeight - 1 - padInfo.top;
  const left = filterWidth - 1 - padInfo.left;
  if (Math.min(top, left) < 0 || dy.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
  const swapped = k.adopt(flipSwap(backend, filter));
  if (strideHeight === 1 && strideWidth === 1) {
    const bottom = inHeight - outHeight + padInfo.top;
    const right = inWidth - outWidth + padInfo.left;
    if (Math.min(bottom, right) < 0) return undefined;
    // XNNPACK pads implicitly: no padded copy of dy.
    return k.run(tf.Conv2D, { x: dy, filter: swapped }, { ...conv2dAttrs([1, 1]), pad: [[0, 0], [top, bottom], [left, right], [0, 0]] });
  }
  // The valid convolution of a (inH + kh - 1)-row input gives the inH rows of dx.
  const padded = k.adopt(dilatePad(backend, dy, strideHeight, strideWidth, top, left, inHeight + filterHeight - 1, inWidth + filterWidth - 1));
  return k.run(tf.Conv2D, { x: padded, filter: swapped }, conv2dAttrs([1, 1]));
}

/**
 * The weight gradient from any backend's own kernels, as k*k matmuls with a long inner dimension:
 * dW[i,j] = X_ij^T dy over the N*outH*outW output positions, X_ij the strided window of the
 * padded input that tap (i, j) reads. Meant for webgpu, where tfjs's own kernel was 85% of a
 * step's kernel time and its matmul runs at ~11 TFLOP/s (PERFORMANCE.md); costs 3k^2 + 4
 * dispatches. Not measured on a GPU yet: opt-in (backend.ts, DDPM_WEBGPU_CONV_FILTER=matmul).
 */
export function backpropFilterMatMul(k: KernelComposer, x: tf.TensorInfo, dy: tf.TensorInfo, attrs: ConvGradAttrs & { filterShape: Conv4 }): tf.TensorInfo {
  const info = tf.backend_util.computeConv2DInfo(x.shape as Conv4, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast');
  const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth, padInfo } = info;
  const [n, inH, inW, c] = x.shape;
  const o = dy.shape[3];
  const rows = n * outHeight * outWidth;
  const needH = (outHeight - 1) * strideHeight + filterHeight;
  const needW = (outWidth - 1) * strideWidth + filterWidth;
  const padded = k.run(tf.PadV2, { x }, {
    paddings: [[0, 0], [padInfo.top, Math.max(needH - padInfo.top - inH, 0)], [padInfo.left, Math.max(needW - padInfo.left - inW, 0)], [0, 0]],
    constantValue: 0,
  });
  const dy2 = k.run(tf.Reshape, { x: dy }, { shape: [rows, o] });
  const taps: tf.TensorInfo[] = [];
  for (let i = 0; i < filterHeight; i++) {
    for (let j = 0; j < filterWidth; j++) {
      const window = k.run(tf.StridedSlice, { x: padded }, {
        begin: [0, i, j, 0], end: [n, i + (outHeight - 1) * strideHeight + 1, j + (outWidth - 1) * strideWidth + 1, c], strides: [1, strideHeight, strideWidth, 1],
        beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
      });
      const x2 = k.run(tf.Reshape, { x: window }, { shape: [rows, c] });
      taps.push(k.run(tf.BatchMatMul, { a: x2, b: dy2 }, { transposeA: true, transposeB: false }));
    }
  }
  const stacked = taps.length === 1 ? taps[0] : k.run(tf.Concat, taps, { axis: 0 });
  return k.run(tf.Reshape, { x: stacked }, { shape: [filterHeight, filterWidth, c, o] });
}

/** Replaces `backendName`'s Conv2DBackpropFilter (NHWC) with backpropFilterMatMul. */
export function registerMatMulConvFilterGradient(backendName: string): void {
  replaceKernel(tf.Conv2DBackpropFilter, backendName, (original) => ({
    kernelName: tf.Conv2DBackpropFilter,
    backendName,
    setupFunc: original?.setupFunc,
    kernelFunc: (args) => {
      const a = args.attrs as unknown as ConvGradAttrs & { filterShape: Conv4 };
      const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      if (a.dataFormat !== 'NHWC') {
        if (original === undefined) throw new Error(`Conv2DBackpropFilter on ${backendName}: no fallback for ${a.dataFormat}`);
        return original.kernelFunc(args);
      }
      const k = new KernelComposer(args.backend as never, backendName);
      return k.finish(backpropFilterMatMul(k, x, dy, a));
    },
  }));
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

  replaceKernel(tf.Conv2DBackpropInput, backendName, (original) => ({
    kernelName: tf.Conv2DBackpropInput,
    backendName,
    // The wasm fallback binds its native function in setupFunc, run when the backend starts.
    setupFunc: original?.setupFunc,
    kernelFunc: (args) => {
      const a = args.attrs as unknown as ConvGradAttrs & { inputShape: Conv4 };
      const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
      if (a.dataFormat === 'NHWC') {
        const k = new KernelComposer(args.backend as never, backendName);
        const dx = backpropInput(k, args.backend as unknown as WasmBackend, dy, filter, a);
        if (dx !== undefined) return k.finish(dx);
        k.finish(undefined);
      }
      if (original === undefined) throw new Error(`Conv2DBackpropInput on ${backendName}: no fallback kernel for stride ${String(a.strides)}`);
      return original.kernelFunc(args);
    },
  }));
}
