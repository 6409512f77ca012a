/**
 * The backends a test file compares, initialised once (tf.setBackend switches between them).
 * webgpu runs through Dawn's OpenGL ES backend on Mesa's llvmpipe (src/backend/webgpu/dawn.ts):
 * tfjs's real webgpu backend and this project's WGSL, on the CPU.
 */
import { ConcreteBackend, initBackend } from '../../src/backend/backend';

export async function initTestBackends(...names: ConcreteBackend[]): Promise<void> {
  if (names.includes('webgpu')) process.env.DDPM_WEBGPU_DAWN_BACKEND = 'opengles';
  for (const name of names) await initBackend(name);
}
