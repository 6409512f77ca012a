/**
 * Chooses and initialises the tfjs backend. `auto` tries tensorflow (tfjs-node-gpu / tfjs-node),
 * then webgpu, then wasm, then cpu, and reports which one it got.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
// Gradients of every op: tfjs-core's CommonJS build registers none, so scripts/build-gradients.js
// bundles its ESM gradient registrations at build time (they share tfjs's global registry).
import './generated/registerGradients';
import { registerConvGradients } from './convGradients';
import { registerDirectConv } from './wasmConv';
import { registerWasmKernels } from './wasmKernels';
import { findVulkanLoader } from './vulkan';
import { createGpu, dawnBackendFromEnv, type DawnBackend } from './webgpu/dawn';
import { setReferenceSavedTensors } from './savedTensors';
import { registerWebgpuKernels, webgpuKernelChoiceFromEnv, type WebgpuKernelChoice } from './webgpu/register';

export const BACKEND_NAMES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type ConcreteBackend = Exclude<BackendName, 'auto'>;

export class BackendUnavailableError extends Error {
  /** A few words for `auto`'s one-line summary of what it skipped. */
  readonly brief: string;

  constructor(message: string, options?: { cause?: unknown; brief?: string }) {
    super(message, options);
    this.name = 'BackendUnavailableError';
    this.brief = options?.brief ?? message;
  }
}

/** Backends whose kernels use one core per thread (wasm in Node, the pure-JS cpu backend): more
 * cores need more threads or processes, and a thread of their own keeps work off a busy one.
 * tensorflow and webgpu use the machine from one thread. */
export function computesOnOneCore(backend: string): boolean {
  return backend === 'wasm' || backend === 'cpu';
}

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

function loadOptional(moduleName: string): unknown {
  // A computed name keeps bundlers from resolving optional native packages at build time.
  const req = eval('require') as NodeRequire;
  return req(moduleName);
}

/** Dawn's native addon, loaded directly: the package's entry is an ES module that only re-exports
 * it (plus a patch for GPUDevice.destroy, which tfjs never calls), and a CommonJS test runner
 * cannot load ES modules. */
function loadDawn(): { create(flags: string[]): unknown; globals: Record<string, unknown> } {
  const req = eval('require') as NodeRequire;
  const root = path.dirname(req.resolve('webgpu/package.json'));
  const platform = process.platform === 'darwin' ? 'darwin-universal' : `${process.platform}-${process.arch}`;
  return req(path.join(root, 'dist', platform, 'dawn.node')) as ReturnType<typeof loadDawn>;
}

async function initTensorflow(): Promise<void> {
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      loadOptional(pkg);
      if (await tf.setBackend('tensorflow')) return;
      errors.push(`${pkg}: loaded but the 'tensorflow' backend did not initialise`);
    } catch (err) {
      errors.push(`${pkg}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new BackendUnavailableError(
    `backend 'tensorflow' needs @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node installed with its libtensorflow binary ` +
    `(npm install @tensorflow/tfjs-node-gpu on a machine that can reach its binary host); ${errors.join('; ')}`,
    { brief: 'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed and working' });
}

/** What Dawn says of its adapter (WebGPU's GPUAdapterInfo), for the log: which GPU a worker got. */
export function describeAdapter(adapter: unknown, dawnBackend: DawnBackend): string {
  const info = (adapter as { info?: { vendor?: string; architecture?: string; device?: string; description?: string } }).info ?? {};
  const name = info.device || info.description || 'unnamed';
  const details = [info.vendor, info.architecture, info.device ? info.description : undefined].filter((s) => s).join(', ');
  return `webgpu adapter: ${name}${details ? ` (${details})` : ''}, Dawn ${dawnBackend}`;
}

async function initWebgpu(log: (line: string) => void): Promise<void> {
  let dawnBackend: DawnBackend;
  let kernels: WebgpuKernelChoice;
  try {
    dawnBackend = dawnBackendFromEnv();
    kernels = webgpuKernelChoiceFromEnv();
  } catch (err) {
    throw new BackendUnavailableError(`backend 'webgpu': ${(err as Error).message}`, { brief: (err as Error).message });
  }
  if (dawnBackend === 'vulkan' && findVulkanLoader() === undefined) {
    throw new BackendUnavailableError(`backend 'webgpu' needs a Vulkan loader (libvulkan.so.1) and a GPU driver; this machine has no loader`, { brief: 'no Vulkan loader' });
  }
  let webgpu: ReturnType<typeof loadDawn>;
  try {
    webgpu = loadDawn();
  } catch (err) {
    throw new BackendUnavailableError(`backend 'webgpu' needs the optional package 'webgpu' (Dawn): ${(err as Error).message.split('\n')[0]}`);
  }
  const g = globalThis as Record<string, unknown>;
  Object.assign(g, webgpu.globals);
  if (g.navigator === undefined || (g.navigator as { gpu?: unknown }).gpu === undefined) {
    Object.defineProperty(g, 'navigator', { value: { gpu: createGpu(webgpu.create, dawnBackend) }, configurable: true, writable: true });
  }
  const gpu = (g.navigator as { gpu: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = await gpu.requestAdapter();
  if (adapter === null || adapter === undefined) throw new BackendUnavailableError(`backend 'webgpu': Dawn found no GPU adapter on this machine (Dawn backend ${dawnBackend})`, { brief: 'no GPU adapter' });
  log(describeAdapter(adapter, dawnBackend));
  require('@tensorflow/tfjs-backend-webgpu');
  registerWebgpuKernels(kernels);
  if (!(await tf.setBackend('webgpu'))) throw new BackendUnavailableError(`backend 'webgpu' did not initialise`);
}

async function initWasm(): Promise<void> {
  require('@tensorflow/tfjs-backend-wasm');
  registerDirectConv('wasm');
  registerConvGradients('wasm');
  registerWasmKernels('wasm');
  if (!(await tf.setBackend('wasm'))) throw new BackendUnavailableError(`backend 'wasm' did not initialise`);
}

async function initCpu(): Promise<void> {
  // The cpu backend keeps tfjs's own conv gradients: tests use them as the reference.
  require('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new BackendUnavailableError(`backend 'cpu' did not initialise`);
}

async function initConcrete(name: ConcreteBackend, log: (line: string) => void): Promise<void> {
  switch (name) {
    case 'tensorflow':
      return initTensorflow();
    case 'webgpu':
      return initWebgpu(log);
    case 'wasm':
      return initWasm();
    case 'cpu':
      return initCpu();
    default: {
      const never: never = name;
      throw new BackendUnavailableError(`unknown backend "${String(never)}" (allowed: ${BACKEND_NAMES.join(', ')})`);
    }
  }
}

/** Initialises the named backend (or the first that works for `auto`) and returns its name. */
export async function initBackend(name: BackendName, log: (line: string) => void = () => {}): Promise<ConcreteBackend> {
  if (!isBackendName(name)) throw new BackendUnavailableError(`unknown backend "${String(name)}" (allowed: ${BACKEND_NAMES.join(', ')})`);
  // PROD silences tfjs's console advice (e.g. to install tfjs-node); errors still throw.
  tf.env().set('PROD', true);
  setReferenceSavedTensors(true);
  if (name !== 'auto') {
    await initConcrete(name, log);
    await tf.ready();
    return name;
  }
  const tried: string[] = [];
  for (const candidate of ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const) {
    try {
      await initConcrete(candidate, log);
      await tf.ready();
      if (tried.length > 0) log(`backend auto: ${tried.join('; ')}`);
      return candidate;
    } catch (err) {
      const reason = err instanceof BackendUnavailableError ? err.brief : (err as Error).message.split('\n')[0];
      tried.push(`${candidate} unavailable (${reason})`);
    }
  }
  throw new BackendUnavailableError(`backend auto: no backend works: ${tried.join('; ')}`);
}
