/**
 * Fused kernels for the U-Net's normalisation and activation, with their gradients, for the cpu
 * and wasm backends (README "Worker compute speed"):
 *  - DdpmGroupNorm: GroupNorm (per example and group of channels, over all pixels) with
 *    per-channel scale and shift, optionally followed by swish. Outputs y and, for the gradient,
 *    the per-(example, group) mean and 1/sigma. Its gradient kernel DdpmGroupNormGrad computes
 *    dx, dgamma and dbeta in two passes over the data, with the analytic GroupNorm backward
 *      dx = (1/sigma) (dyhat - mean(dyhat) - xhat mean(dyhat xhat)),  dyhat = dz gamma,
 *    where dz is the gradient at the normalised, scaled and shifted value z (through swish:
 *    dz = dy s (1 + z (1 - s)), s = sigmoid(z)), and dgamma = sum dz xhat, dbeta = sum dz.
 *  - DdpmSwish: x sigmoid(x), and DdpmSwishGrad: dy s (1 + x (1 - s)).
 * Autodiff of the plain ops ran ~25 kernels for GroupNorm + swish and kept ~8 activation-sized
 * intermediates per layer for the backward pass; these keep none (z is recomputed from x, the
 * mean and 1/sigma). Sums are float64 in a fixed order, so results are deterministic.
 *
 * On wasm the kernels are WebAssembly SIMD (src/backend/simd/kernels.c) working in place on the
 * backend's memory; on cpu (and on wasm without SIMD), the same arithmetic as loops over the
 * float32 arrays, with the backend's Sigmoid kernel; on webgpu, WGSL (src/backend/webgpu/groupNorm.ts).
 * Backends without these kernels (tensorflow) use the composite path in src/model/layers.ts, which
 * has the same analytic gradient written in tfjs ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { KernelComposer } from './kernelComposer';
import { SimdKernels, simdKernels, withScratch } from './simdKernels';
import { WasmBackend, heapAddress } from './wasmHeap';
import { groupAffine, groupNormBackward, groupStats, swishBackward } from './groupNormMath';

export const GROUP_NORM = 'DdpmGroupNorm';
export const GROUP_NORM_GRAD = 'DdpmGroupNormGrad';
export const SWISH = 'DdpmSwish';
export const SWISH_GRAD = 'DdpmSwishGrad';

export interface GroupNormAttrs {
  groups: number;
  eps: number;
  swish: boolean;
}

/** Float32 arrays of a backend's tensors, and new tensors (cpu: arrays in JS; wasm: heap). */
interface HostArrays {
  alloc(shape: number[]): tf.TensorInfo;
  /** Valid until the next allocation on this backend (wasm memory may grow and move). */
  array(t: tf.TensorInfo): Float32Array;
}

type AnyBackend = tf.KernelBackend & {
  typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array;
  makeOutput?: (shape: number[], dtype: tf.DataType) => tf.TensorInfo;
  data?: { get(dataId: tf.DataId): { values?: unknown } };
  makeTensorInfo?: (shape: number[], dtype: tf.DataType, values?: Float32Array) => tf.TensorInfo;
};

/** The wasm backend, if it can run the SIMD kernels on its memory; else undefined (JS loops). */
function wasmBackend(backend: unknown): WasmBackend | undefined {
  const b = backend as Partial<WasmBackend>;
  if (b.wasm?.asm?.memory === undefined || b.dataIdMap === undefined) return undefined;
  return simdKernels(b as WasmBackend) === undefined ? undefined : (b as WasmBackend);
}

function simd(backend: WasmBackend): SimdKernels {
  return simdKernels(backend) as SimdKernels;
}

function hostArrays(backend: AnyBackend): HostArrays {
  if (backend.typedArrayFromHeap !== undefined && backend.makeOutput !== undefined) {
    const b = backend as Required<Pick<AnyBackend, 'typedArrayFromHeap' | 'makeOutput'>>;
    return { alloc: (shape) => b.makeOutput(shape, 'float32'), array: (t) => b.typedArrayFromHeap(t) };
  }
  if (backend.data !== undefined && backend.makeTensorInfo !== undefined) {
    const b = backend as Required<Pick<AnyBackend, 'data' | 'makeTensorInfo'>>;
    return {
      alloc: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(tf.util.sizeFromShape(shape))),
      array: (t) => {
        const values = b.data.get(t.dataId).values;
        if (!(values instanceof Float32Array)) throw new Error('fused kernels need float32 tensors');
        return values;
      },
    };
  }
  throw new Error('fused kernels: unsupported backend');
}

/** Throws naming the first input that is not float32. */
export function checkFloat(kernel: string, inputs: Record<string, tf.TensorInfo>): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (t.dtype !== 'float32') throw new Error(`${kernel}: input ${name} must be float32, got ${t.dtype}`);
  }
}

// ---- kernels --------------------------------------------------------------------------------------

/** [examples, pixels per example, channels] of NHWC x, checked against the group count. */
export function groupNormDims(x: tf.TensorInfo, groups: number): [number, number, number] {
  const c = x.shape[x.shape.length - 1];
  const n = x.shape[0];
  const hw = tf.util.sizeFromShape(x.shape.slice(1, -1));
  if (x.shape.length < 2 || c % groups !== 0) throw new Error(`${GROUP_NORM}: ${c} channels are not divisible into ${groups} groups`);
  return [n, hw, c];
}

function groupNormKernel(backendName: string): tf.KernelConfig {
  return {
    kernelName: GROUP_NORM,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
      const { groups, eps, swish } = attrs as unknown as GroupNormAttrs;
      checkFloat(GROUP_NORM, { x, gamma, beta });
      const [n, hw, c] = groupNormDims(x, groups);
      const wasm = wasmBackend(backend);
      if (wasm !== undefined) {
        const mean = wasm.makeOutput([n, groups], 'float32');
        const rstd = wasm.makeOutput([n, groups], 'float32');
        const y = wasm.makeOutput(x.shape, 'float32');
        const at = (t: tf.TensorInfo) => heapAddress(wasm, t);
        withScratch(wasm, 24 * c, (scratch) => simd(wasm).gn_forward(at(x), at(gamma), at(beta), n, hw, c, groups, eps, swish ? 1 : 0, at(y), at(mean), at(rstd), scratch));
        return [y, mean, rstd];
      }
      const host = hostArrays(backend as AnyBackend);
      const mean = host.alloc([n, groups]);
      const rstd = host.alloc([n, groups]);
      const z = host.alloc(x.shape);
      const meanA = host.array(mean);
      const rstdA = host.array(rstd);
      groupStats(host.array(x), n, hw, c, groups, eps, meanA, rstdA);
      groupAffine(host.array(x), host.array(gamma), host.array(beta), meanA, rstdA, n, hw, c, groups, host.array(z));
      if (!swish) return [z, mean, rstd];
      const k = new KernelComposer(backend as never, backendName);
      const s = k.run(tf.Sigmoid, { x: z });
      const y = k.run(tf.Multiply, { a: z, b: s });
      k.finish(y);
      (backend as AnyBackend).disposeData(z.dataId);
      return [y, mean, rstd];
    },
  };
}

function groupNormGradKernel(backendName: string): tf.KernelConfig {
  return {
    kernelName: GROUP_NORM_GRAD,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { dy, x, gamma, beta, mean, rstd } = inputs as Record<'dy' | 'x' | 'gamma' | 'beta' | 'mean' | 'rstd', tf.TensorInfo>;
      const { groups, swish } = attrs as unknown as GroupNormAttrs;
      checkFloat(GROUP_NORM_GRAD, { dy, x, gamma, beta, mean, rstd });
      const [n, hw, c] = groupNormDims(x, groups);
      const wasm = wasmBackend(backend);
      if (wasm !== undefined) {
        const dx = wasm.makeOutput(x.shape, 'float32');
        const dgamma = wasm.makeOutput([c], 'float32');
        const dbeta = wasm.makeOutput([c], 'float32');
        const at = (t: tf.TensorInfo) => heapAddress(wasm, t);
        withScratch(wasm, 52 * c, (scratch) => simd(wasm).gn_backward(at(dy), at(x), at(gamma), at(beta), at(mean), at(rstd), n, hw, c, groups, swish ? 1 : 0,
          at(dx), at(dgamma), at(dbeta), scratch));
        return [dx, dgamma, dbeta];
      }
      const host = hostArrays(backend as AnyBackend);
      const dx = host.alloc(x.shape);
      const dgamma = host.alloc([c]);
      const dbeta = host.alloc([c]);
      let dz = dy;
      if (swish) {
        // z again from x and the saved statistics, then dz = dy s (1 + z (1 - s)) into dx.
        const k = new KernelComposer(backend as never, backendName);
        const z = host.alloc(x.shape);
        groupAffine(host.array(x), host.array(gamma), host.array(beta), host.array(mean), host.array(rstd), n, hw, c, groups, host.array(z));
        const s = k.run(tf.Sigmoid, { x: z });
        swishBackward(host.array(dy), host.array(z), host.array(s), host.array(dx));
        k.finish(undefined);
        (backend as AnyBackend).disposeData(z.dataId);
        dz = dx;
      }
      groupNormBackward(host.array(dz), host.array(x), host.array(gamma), host.array(mean), host.array(rstd), n, hw, c, groups, host.array(dx), host.array(dgamma), host.array(dbeta));
      return [dx, dgamma, dbeta];
    },
  };
}

function swishKernel(backendName: string): tf.KernelConfig {
  return {
    kernelName: SWISH,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { x } = inputs as { x: tf.TensorInfo };
      checkFloat(SWISH, { x });
      const wasm = wasmBackend(backend);
      if (wasm !== undefined) {
        const y = wasm.makeOutput(x.shape, 'float32');
        simd(wasm).swish_forward(heapAddress(wasm, x), tf.util.sizeFromShape(x.shape), heapAddress(wasm, y));
        return y;
      }
      const k = new KernelComposer(backend as never, backendName);
      const s = k.run(tf.Sigmoid, { x });
      return k.finish(k.run(tf.Multiply, { a: x, b: s }));
    },
  };
}

function swishGradKernel(backendName: string): tf.KernelConfig {
  return {
    kernelName: SWISH_GRAD,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
      checkFloat(SWISH_GRAD, { dy, x });
      const wasm = wasmBackend(backend);
      if (wasm !== undefined) {
        const dx = wasm.makeOutput(x.shape, 'float32');
        simd(wasm).swish_backward(heapAddress(wasm, dy), heapAddress(wasm, x), tf.util.sizeFromShape(x.shape), heapAddress(wasm, dx));
        return dx;
      }
      const host = hostArrays(backend as AnyBackend);
      const dx = host.alloc(x.shape);
      const k = new KernelComposer(backend as never, backendName);
      const s = k.run(tf.Sigmoid, { x });
      swishBackward(host.array(dy), host.array(x), host.array(s), host.array(dx));
      k.finish(undefined);
      return dx;
    },
  };
}

let gradientsRegistered = false;

/** The gradients of the fused ops, for every backend that has their kernels. Idempotent. */
export function registerFusedGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: GROUP_NORM,
    inputsToSave: ['x', 'gamma', 'beta'],
    outputsToSave: [false, true, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = Array.isArray(dys) ? dys[0] : dys;
      const [x, gamma, beta, mean, rstd] = saved;
      const [dx, dgamma, dbeta] = tf.engine().runKernel(GROUP_NORM_GRAD, { dy, x, gamma, beta, mean, rstd }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
    },
  });
  tf.registerGradient({
    kernelName: SWISH,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      return { x: () => tf.engine().runKernel(SWISH_GRAD, { dy: dy as tf.Tensor, x }) as tf.Tensor };
    },
  });
}

/** Registers the fused kernels (and their gradients) for a backend with float32 host arrays. Idempotent. */
export function registerFusedKernels(backendName: string): void {
  registerFusedGradients();
  for (const make of [groupNormKernel, groupNormGradKernel, swishKernel, swishGradKernel]) {
    const config = make(backendName);
    if (tf.getKernel(config.kernelName, backendName) === undefined) tf.registerKernel(config);
  }
}

/** Whether the active backend runs the fused kernels (else layers.ts composes tfjs ops). */
export function hasFusedKernels(): boolean {
  return tf.getKernel(GROUP_NORM, tf.getBackend()) !== undefined;
}
