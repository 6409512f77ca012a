/**
 * Which of Dawn's backends serves tfjs's webgpu backend. Vulkan by default (the GPU machines);
 * `DDPM_WEBGPU_DAWN_BACKEND=opengles` (or `opengl`) runs it through Mesa's llvmpipe instead, on
 * any CPU machine with Mesa's EGL: slow, but the real webgpu backend and real WGSL, which is how
 * this project's webgpu kernels are tested without a GPU. Dawn's GL backends offer only
 * WebGPU's "compatibility" feature level, so the adapter is requested at that level.
 */
import { envChoice } from '../../util/envChoice';

export const DAWN_BACKENDS = ['vulkan', 'opengles', 'opengl'] as const;
export type DawnBackend = (typeof DAWN_BACKENDS)[number];

export const DAWN_BACKEND_ENV = 'DDPM_WEBGPU_DAWN_BACKEND';

export function dawnBackendFromEnv(env: NodeJS.ProcessEnv = process.env): DawnBackend {
  return envChoice(DAWN_BACKEND_ENV, DAWN_BACKENDS, env);
}

interface Gpu {
  requestAdapter(options?: Record<string, unknown>): Promise<unknown>;
}

/** A `navigator.gpu` on the chosen Dawn backend. */
export function createGpu(create: (flags: string[]) => unknown, backend: DawnBackend): Gpu {
  if (backend === 'vulkan') return create([]) as Gpu;
  // Headless EGL: no display server on CI machines. Read by Mesa when Dawn opens EGL.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  const gpu = create([`backend=${backend}`]) as Gpu;
  const requestAdapter = gpu.requestAdapter.bind(gpu);
  gpu.requestAdapter = (options) => requestAdapter({ ...options, featureLevel: 'compatibility' });
  return gpu;
}
