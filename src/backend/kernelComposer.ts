/**
 * Runs registered kernels of one backend directly, for kernels this project composes from
 * others. Intermediates are released as soon as they are used; only the result leaves.
 */
import * as tf from '@tensorflow/tfjs-core';

type TensorInfo = tf.TensorInfo;
interface RefCountedBackend extends tf.KernelBackend {
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

export class KernelComposer {
  private readonly temporaries: TensorInfo[] = [];

  constructor(private readonly backend: RefCountedBackend, private readonly backendName: string) {}

  /** Concat takes its inputs as an array; other kernels as a named map. */
  run(kernelName: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: Record<string, unknown> = {}): TensorInfo {
    const config = tf.getKernel(kernelName, this.backendName);
    if (config === undefined) throw new Error(`kernel ${kernelName} is not registered for backend ${this.backendName}`);
    const out = config.kernelFunc({ inputs, backend: this.backend, attrs } as never) as TensorInfo | TensorInfo[];
    const info = Array.isArray(out) ? out[0] : out;
    this.temporaries.push(info);
    return info;
  }

  /** Adds a tensor this kernel allocated itself to the intermediates released by finish(). */
  adopt(info: TensorInfo): TensorInfo {
    this.temporaries.push(info);
    return info;
  }

  /** Releases every intermediate except `result`, which the caller hands to the engine. */
  finish<T extends TensorInfo | undefined>(result: T): T {
    for (const t of this.temporaries) {
      if (t !== result) this.backend.disposeData(t.dataId);
    }
    this.temporaries.length = 0;
    return result;
  }
}

/** Registers `make(original)` in place of a backend's kernel, handing it the original (if any) for
 * the cases it does not handle and for its setupFunc. */
export function replaceKernel(kernelName: string, backendName: string, make: (original: tf.KernelConfig | undefined) => tf.KernelConfig): void {
  const original = tf.getKernel(kernelName, backendName);
  if (original !== undefined) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel(make(original));
}

/** What a kernel function receives, with this project's types for inputs, attrs and backend. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Registers `compute` in place of a backend's kernel, the original (if any) running wherever
 * `compute` returns undefined. The registered function is named as `compute` is (tests check which
 * kernel is registered), and keeps the original's setupFunc (the wasm kernels bind their native
 * functions there when the backend starts).
 */
export function replaceKernelWhere<A = KernelArgs>(kernelName: string, backendName: string,
  compute: (args: A) => tf.TensorInfo | tf.TensorInfo[] | undefined): void {
  replaceKernel(kernelName, backendName, (original) => {
    const kernelFunc = { [compute.name]: (args: KernelArgs) => {
      const out = compute(args as unknown as A);
      if (out !== undefined) return out;
      if (original === undefined) throw new Error(`${kernelName} on ${backendName}: no fallback kernel`);
      return original.kernelFunc(args);
    } }[compute.name];
    return { kernelName, backendName, setupFunc: original?.setupFunc, kernelFunc };
  });
}
