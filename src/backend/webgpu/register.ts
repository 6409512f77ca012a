/**
 * This project's kernels for tfjs's webgpu backend. `DDPM_WEBGPU_CONV_FILTER` picks the conv
 * weight gradient: `tiled` (default: filterGradient.ts), `matmul` (k*k tfjs matmuls,
 * convGradients.ts) or `tfjs` (tfjs's own kernel, for comparison in benchmarks).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { replaceKernel } from '../kernelComposer';
import { registerMatMulConvFilterGradient } from '../convGradients';
import { filterGradient } from './filterGradient';
import { envChoice } from '../../util/envChoice';

export const CONV_FILTER_CHOICES = ['tiled', 'matmul', 'tfjs'] as const;
export type ConvFilterChoice = (typeof CONV_FILTER_CHOICES)[number];
export const CONV_FILTER_ENV = 'DDPM_WEBGPU_CONV_FILTER';

export function convFilterChoiceFromEnv(env: NodeJS.ProcessEnv = process.env): ConvFilterChoice {
  return envChoice(CONV_FILTER_ENV, CONV_FILTER_CHOICES, env);
}

interface FilterAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

function registerTiledConvFilterGradient(): void {
  replaceKernel(tf.Conv2DBackpropFilter, 'webgpu', (original) => ({
    kernelName: tf.Conv2DBackpropFilter,
    backendName: 'webgpu',
    kernelFunc: function tiledConvFilterGradient(args) {
      const a = args.attrs as unknown as FilterAttrs;
      const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
      if (a.dataFormat !== 'NHWC' || x.dtype !== 'float32') {
        if (original === undefined) throw new Error(`Conv2DBackpropFilter on webgpu: no fallback for ${a.dataFormat} ${x.dtype}`);
        return original.kernelFunc(args);
      }
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
      return filterGradient(args.backend as unknown as WebGPUBackend, x, dy, {
        batch: info.batchSize,
        inHeight: info.inHeight,
        inWidth: info.inWidth,
        inChannels: info.inChannels,
        outHeight: info.outHeight,
        outWidth: info.outWidth,
        outChannels: info.outChannels,
        filterHeight: info.filterHeight,
        filterWidth: info.filterWidth,
        strideHeight: info.strideHeight,
        strideWidth: info.strideWidth,
        padTop: info.padInfo.top,
        padLeft: info.padInfo.left,
      });
    },
  }));
}

/** Registers the chosen kernels on webgpu; call after tfjs-backend-webgpu is loaded. Idempotent. */
export function registerWebgpuKernels(choice: ConvFilterChoice): void {
  const g = globalThis as Record<string, unknown>;
  const marker = '__ddpmWebgpuKernels';
  if (g[marker] !== undefined) {
    if (g[marker] !== choice) throw new Error(`webgpu kernels already registered as ${String(g[marker])}, not ${choice}`);
    return;
  }
  g[marker] = choice;
  if (choice === 'tiled') registerTiledConvFilterGradient();
  else if (choice === 'matmul') registerMatMulConvFilterGradient('webgpu');
}
