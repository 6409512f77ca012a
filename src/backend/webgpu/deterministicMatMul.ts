/**
 * No float atomics in tfjs's matmuls. For a product with one batch, a shared dimension K of 2,000
 * or more and few 32x32 output tiles, tfjs's webgpu backend splits K across workgroups that add
 * their parts into the output with atomics (MatMulSplitKProgram): the order of the adds, so the
 * result's bits, vary from run to run. A worker's gradient must be the same bits every time (the
 * 1-vs-N-workers guarantee). Seen: the ch64 U-Net's gradient at batch 1 differed from step to step
 * (its 3x3 convolutions over 256 channels at 8x8 go through im2col, K = 2,304).
 *
 * For exactly those products this sets tfjs's WEBGPU_MATMUL_PROGRAM_TYPE, for the length of the
 * kernel call, to the program tfjs picks for other few-tile products (MatMulSmallOutputSizeProgram:
 * each thread sums the whole K in order). The tests check no split-K program runs at the U-Net's
 * shapes, so a tfjs whose choice moved would be caught.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { replaceKernel } from '../kernelComposer';

/** tfjs-backend-webgpu's MatMulProgramType.MatMulSmallOutputSizeProgram. */
const SMALL_OUTPUT_SIZE_PROGRAM = 2;

export interface MatMulDims {
  batch: number;
  m: number;
  n: number;
  k: number;
}

/** tfjs's choice of MatMulSplitKProgram (batchMatMulImpl, tfjs-backend-webgpu 4.22). */
export function choosesSplitK({ batch, m, n, k }: MatMulDims, threshold: number): boolean {
  const tiles = batch * Math.ceil(m / 32) * Math.ceil(n / 32);
  const fewTiles = tiles <= threshold || (m <= 8 && tiles <= threshold * 2);
  return fewTiles && batch * m * n > 128 && batch === 1 && k >= 2000;
}

function matMulDims(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): MatMulDims {
  const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
  const ra = a.shape.length;
  const rb = b.shape.length;
  return {
    batch: Math.max(size(a.shape.slice(0, -2)), size(b.shape.slice(0, -2))),
    m: transposeA ? a.shape[ra - 1] : a.shape[ra - 2],
    n: transposeB ? b.shape[rb - 2] : b.shape[rb - 1],
    k: transposeA ? a.shape[ra - 2] : a.shape[ra - 1],
  };
}

/** The product a channels-last conv2d hands to batchMatMulImpl, if any (conv2DImpl's routes). */
function convMatMulDims(info: tf.backend_util.Conv2DInfo, threshold: number): MatMulDims | undefined {
  const sameSize = info.filterHeight === info.inHeight && info.filterWidth === info.inWidth && info.padInfo.type === 'VALID';
  if (sameSize) return { batch: 1, m: info.batchSize, n: info.outChannels, k: info.inHeight * info.inWidth * info.inChannels };
  const pointwise = info.filterHeight === 1 && info.filterWidth === 1 && info.dilationHeight === 1 && info.dilationWidth === 1
    && info.strideHeight === 1 && info.strideWidth === 1 && (info.padInfo.type === 'SAME' || info.padInfo.type === 'VALID');
  if (pointwise) return { batch: info.batchSize, m: info.inHeight * info.inWidth, n: info.outChannels, k: info.inChannels };
  const tiles = info.batchSize * Math.ceil((info.outHeight * info.outWidth) / 32) * Math.ceil(info.outChannels / 32);
  if (!tf.env().getBool('WEBGPU_CONV_SEPARATE_IM2COL_SHADER') && tiles > threshold) return undefined;
  return { batch: info.batchSize, m: info.outHeight * info.outWidth, n: info.outChannels, k: info.filterHeight * info.filterWidth * info.inChannels };
}

/** tfjs's few-tiles threshold: its matmul takes the flag from 1 up, its conv2d from 0 up. */
function thresholdOf(backend: unknown, from = 1): number {
  const flag = tf.env().getNumber('WEBGPU_THRESHOLD_TO_INCREASE_WORKGROUPS_FOR_MATMUL');
  return flag >= from ? flag : (backend as WebGPUBackend).thresholdToIncreaseWorkgroups;
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** The product a kernel call will hand to tfjs's batchMatMulImpl, for the kernels that do. */
function productOf(kernelName: string, args: { inputs: Record<string, tf.TensorInfo>; attrs?: tf.NamedAttrMap; backend: unknown }): MatMulDims | undefined {
  const { inputs, attrs = {} } = args;
  if (kernelName === tf.BatchMatMul || kernelName === tf._FusedMatMul) {
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    return matMulDims(inputs.a, inputs.b, transposeA, transposeB);
  }
  const a = attrs as unknown as ConvAttrs;
  if (a.dataFormat !== 'NHWC') return undefined;
  const info = tf.backend_util.computeConv2DInfo(inputs.x.shape as [number, number, number, number], inputs.filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
  return convMatMulDims(info, thresholdOf(args.backend, 0));
}

/** Wraps tfjs's matmul and conv2d kernels on webgpu so none splits K with atomics. Call once. */
export function registerDeterministicMatMul(): void {
  for (const kernelName of [tf.BatchMatMul, tf._FusedMatMul, tf.Conv2D, tf.FusedConv2D]) {
    replaceKernel(kernelName, 'webgpu', (original) => {
      if (original === undefined) throw new Error(`${kernelName} is not registered for webgpu`);
      return {
        ...original,
        kernelFunc: function deterministicMatMul(args) {
          const product = productOf(kernelName, args as never);
          if (product === undefined || !choosesSplitK(product, thresholdOf(args.backend))) return original.kernelFunc(args);
          const env = tf.env();
          const before = env.getNumber('WEBGPU_MATMUL_PROGRAM_TYPE');
          env.set('WEBGPU_MATMUL_PROGRAM_TYPE', SMALL_OUTPUT_SIZE_PROGRAM);
          try {
            return original.kernelFunc(args);
          } finally {
            env.set('WEBGPU_MATMUL_PROGRAM_TYPE', before);
          }
        },
      };
    });
  }
}
