/**
 * The kernels tfjs's webgpu backend runs. `DDPM_WEBGPU_KERNELS=project` (default) adds this
 * project's: the fused GroupNorm (+ swish) and swish (groupNorm.ts), dropout with its mask
 * computed in place (dropout.ts), the tiled conv weight
 * gradient (filterGradient.ts; on an H100 12 ms of a ch64 step's kernel time where k*k tfjs
 * matmuls took 229 ms, summed with float atomics in a varying order), Sum over adjacent
 * non-innermost axes without a transpose (rowSum.ts: the bias gradients), the stride-1 conv input
 * gradient as a forward convolution (convInputGradient.ts) and tfjs's tiled one at stride 2 in
 * place of its naive default (a thread per input element walking every tap and output channel, no
 * reuse through workgroup memory); 64 dispatches per queue submit, not 15; and
 * uploads through queue.writeBuffer (upload.ts); and matmuls that never add with float atomics
 * (deterministicMatMul.ts); forward convolutions as a tiled implicit matmul (conv2d.ts).
 * `tfjs` leaves tfjs's own kernels and settings alone: the baseline in benchmarks.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { replaceKernel, replaceKernelWhere } from '../kernelComposer';
import { Conv4, ConvGradAttrs } from '../convGradients';
import { filterGradient } from './filterGradient';
import { convInputGradient, isPlainConvInputGradient } from './convInputGradient';
import { conv2dTiled, isTiledConv } from './conv2d';
import { GROUP_NORM, GROUP_NORM_GRAD, GroupNormAttrs, SWISH, SWISH_GRAD, checkFloat, groupNormDims, registerFusedGradients } from '../fusedKernels';
import { GroupNormDims, groupNormBackward, groupNormForward } from './groupNorm';
import { swishKernel } from './swish';
import { dropoutKernel } from './dropout';
import { DROPOUT, DropoutAttrs, registerDropoutGradient } from '../dropoutMask';
import { installWriteBufferUpload } from './upload';
import { rowSumView, sumRows } from './rowSum';
import { registerDeterministicMatMul } from './deterministicMatMul';
import { envChoice } from '../../util/envChoice';
import { storedAsFloat32 } from './internals';

/**
 * Dispatches per queue submit. A ch64 step is bound by the host's time to issue its ~1,100
 * dispatches, and each submit cost Dawn ~0.3 ms of it on an H100 host; fewer submits start the
 * GPU later, though. Measured there, each size in turn step by step in one process (12 steps
 * each, medians): 8: 169 ms, 15 (tfjs's default): 167, 32: 138, 64: 138, 128: 158, 1000: 187;
 * 64 beat 15 in 11 of the 12 pairs.
 */
export const SUBMIT_BATCH_SIZE = 64;

export interface WebgpuKernelChoice {
  kernels: 'project' | 'tfjs';
  /** With the project's kernels, the stride-1 conv input gradient: as a forward convolution
   * (convInputGradient.ts) or tfjs's own input-gradient program (DDPM_WEBGPU_CONV_INPUT). */
  convInput: 'conv' | 'tfjs';
  /** Whether workers replay their steps without tfjs once learnt (stepReplay.ts; DDPM_WEBGPU_REPLAY). */
  replay: 'on' | 'off';
  /** With the project's kernels, forward convolutions: conv2d.ts's tiled program, or tfjs's
   * (DDPM_WEBGPU_CONV). On an H100 the replayed ch64 batch-64 step took 58-59 ms with the tiled
   * one against 66-67 with tfjs's, alternating run by run. */
  conv: 'tiled' | 'tfjs';
}

/** The choice from DDPM_WEBGPU_KERNELS, _CONV_INPUT, _REPLAY and _CONV; a bad value throws one line. */
export function webgpuKernelChoiceFromEnv(env: NodeJS.ProcessEnv = process.env): WebgpuKernelChoice {
  return {
    kernels: envChoice('DDPM_WEBGPU_KERNELS', ['project', 'tfjs'] as const, env),
    convInput: envChoice('DDPM_WEBGPU_CONV_INPUT', ['conv', 'tfjs'] as const, env),
    replay: envChoice('DDPM_WEBGPU_REPLAY', ['on', 'off'] as const, env),
    conv: envChoice('DDPM_WEBGPU_CONV', ['tiled', 'tfjs'] as const, env),
  };
}

interface ConvGradientArgs {
  inputs: Record<string, tf.TensorInfo>;
  attrs: ConvGradAttrs & { filterShape: Conv4; inputShape: Conv4 };
  backend: WebGPUBackend;
}

function registerConvGradients(choice: WebgpuKernelChoice): void {
  replaceKernelWhere<ConvGradientArgs>(tf.Conv2DBackpropFilter, 'webgpu', function tiledConvFilterGradient({ inputs: { x, dy }, attrs: a, backend }) {
    if (a.dataFormat !== 'NHWC' || !storedAsFloat32(backend, x) || !storedAsFloat32(backend, dy)) return undefined;
    const info = tf.backend_util.computeConv2DInfo(x.shape as Conv4, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    return filterGradient(backend, x, dy, info);
  });
  if (choice.convInput === 'tfjs') return;
  // The stride-1 conv input gradient as a forward convolution (convInputGradient.ts).
  replaceKernelWhere<ConvGradientArgs>(tf.Conv2DBackpropInput, 'webgpu', function convInputGradientAsConv({ inputs: { dy, filter }, attrs: a, backend }) {
    if (a.dataFormat !== 'NHWC' || !storedAsFloat32(backend, dy) || !storedAsFloat32(backend, filter)) return undefined;
    const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as Conv4, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    return isPlainConvInputGradient(info) ? convInputGradient(backend, dy, filter, info) : undefined;
  });
}

interface ConvArgs {
  inputs: { x: tf.TensorInfo; filter: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo };
  attrs: { strides: number | [number, number]; pad: ConvGradAttrs['pad']; dataFormat: string; dilations: number | [number, number];
    dimRoundingMode?: 'floor' | 'round' | 'ceil'; activation?: string };
  backend: WebGPUBackend;
}

/** Forward convolutions through conv2d.ts where it applies (else tfjs's kernel), for Conv2D and
 * for FusedConv2D with a per-channel bias and no activation (the U-Net's convolutions). */
function registerTiledConv(): void {
  for (const kernelName of [tf.Conv2D, tf.FusedConv2D]) {
    replaceKernelWhere<ConvArgs>(kernelName, 'webgpu', function tiledConv2d({ inputs: { x, filter, bias, preluActivationWeights }, attrs: a, backend }) {
      if (a.dataFormat !== 'NHWC' || x.shape.length !== 4 || !storedAsFloat32(backend, x) || !storedAsFloat32(backend, filter)) return undefined;
      if (preluActivationWeights !== undefined || (a.activation ?? 'linear') !== 'linear') return undefined;
      if (bias !== undefined && (bias.dtype !== 'float32' || tf.util.sizeFromShape(bias.shape) !== filter.shape[3])) return undefined;
      const info = tf.backend_util.computeConv2DInfo(x.shape as Conv4, filter.shape as Conv4, a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
      return isTiledConv(info) ? conv2dTiled(backend, x, filter, bias, info) : undefined;
    });
  }
}

function dimsOf(x: tf.TensorInfo, groups: number): GroupNormDims {
  const [batch, hw, channels] = groupNormDims(x, groups);
  return { batch, hw, channels, groups };
}

/** The fused GroupNorm (+ swish) and swish kernels (fusedKernels.ts's contracts) in WGSL. */
function registerFusedWebgpuKernels(): void {
  registerFusedGradients();
  const configs: tf.KernelConfig[] = [
    {
      kernelName: GROUP_NORM,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, backend, attrs }) => {
        const { x, gamma, beta } = inputs as Record<'x' | 'gamma' | 'beta', tf.TensorInfo>;
        const { groups, eps, swish } = attrs as unknown as GroupNormAttrs;
        checkFloat(GROUP_NORM, { x, gamma, beta });
        return groupNormForward(backend as unknown as WebGPUBackend, x, gamma, beta, dimsOf(x, groups), eps, swish);
      },
    },
    {
      kernelName: GROUP_NORM_GRAD,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, backend, attrs }) => {
        const { dy, x, gamma, beta, mean, rstd } = inputs as Record<'dy' | 'x' | 'gamma' | 'beta' | 'mean' | 'rstd', tf.TensorInfo>;
        const { groups, swish } = attrs as unknown as GroupNormAttrs;
        checkFloat(GROUP_NORM_GRAD, { dy, x, gamma, beta, mean, rstd });
        return groupNormBackward(backend as unknown as WebGPUBackend, dy, x, gamma, beta, mean, rstd, dimsOf(x, groups), swish);
      },
    },
    {
      kernelName: SWISH,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, backend }) => {
        const { x } = inputs as { x: tf.TensorInfo };
        checkFloat(SWISH, { x });
        return swishKernel(backend as unknown as WebGPUBackend, x);
      },
    },
    {
      kernelName: SWISH_GRAD,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, backend }) => {
        const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
        checkFloat(SWISH_GRAD, { dy, x });
        return swishKernel(backend as unknown as WebGPUBackend, x, dy);
      },
    },
  ];
  for (const config of configs) replaceKernel(config.kernelName, 'webgpu', () => config);
}

/** Dropout with its mask computed on the GPU from a seed tensor (../dropoutMask.ts). */
function registerDropout(): void {
  registerDropoutGradient();
  replaceKernel(DROPOUT, 'webgpu', () => ({
    kernelName: DROPOUT,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, seed } = inputs as { x: tf.TensorInfo; seed: tf.TensorInfo };
      checkFloat(DROPOUT, { x });
      if (seed.dtype !== 'int32' || tf.util.sizeFromShape(seed.shape) !== 1) throw new Error(`${DROPOUT}: seed must be one int32 value, got ${seed.dtype} [${seed.shape.join(', ')}]`);
      return dropoutKernel(backend as unknown as WebGPUBackend, x, seed, (attrs as unknown as DropoutAttrs).rate);
    },
  }));
}

/** Sum over adjacent non-innermost axes (bias gradients) without tfjs's transpose (rowSum.ts). */
function registerRowSum(): void {
  replaceKernelWhere(tf.Sum, 'webgpu', function rowSum({ inputs, attrs, backend }) {
    const { x } = inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const view = x.dtype === 'float32' && tf.util.sizeFromShape(x.shape) > 0 ? rowSumView(x.shape, axes) : undefined;
    if (view === undefined) return undefined;
    const outShape = x.shape.flatMap((d, i) => (!axes.includes(i) ? [d] : keepDims ? [1] : []));
    return sumRows(backend as unknown as WebGPUBackend, x, ...view, outShape);
  });
}

/** Registers the chosen kernels on webgpu; call after tfjs-backend-webgpu is loaded. Idempotent. */
export function registerWebgpuKernels(choice: WebgpuKernelChoice): void {
  const g = globalThis as Record<string, unknown>;
  const marker = '__ddpmWebgpuKernels';
  const key = `${choice.kernels}${choice.kernels === 'project' ? `, conv input ${choice.convInput}, conv ${choice.conv}` : ''}`;
  if (g[marker] !== undefined) {
    if (g[marker] !== key) throw new Error(`webgpu kernels already registered as ${String(g[marker])}, not ${key}`);
    return;
  }
  g[marker] = key;
  if (choice.kernels === 'tfjs') return;
  tf.env().set('WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE', false);
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', SUBMIT_BATCH_SIZE);
  // Every kernel on the GPU. tfjs runs a kernel whose inputs are all small and still on the CPU
  // in JavaScript, so a small unit's first kernels (the noising of its images) would run there:
  // a step recorded for replay (stepRecording.ts) must be GPU programs and uploads only, and its
  // replayed and unreplayed units must compute alike.
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  // Loaded by now (backend.ts requires it before registering): the class whose uploads change.
  installWriteBufferUpload((require('@tensorflow/tfjs-backend-webgpu') as { WebGPUBackend: { prototype: WebGPUBackend } }).WebGPUBackend);
  registerFusedWebgpuKernels();
  registerDropout();
  registerRowSum();
  registerConvGradients(choice);
  registerDeterministicMatMul();
  // After: what it leaves to tfjs goes through the deterministic wrapper.
  if (choice.conv === 'tiled') registerTiledConv();
}
