/**
 * The wasm backend's convolution gradients (src/backend/convGradients.ts) against the cpu
 * backend's reference kernels (tfjs-backend-cpu's Conv2DBackpropFilter / Conv2DBackpropInput,
 * straightforward loops over the definition).
 *
 * Both backends live in this one process (jest gives each test file its own): each is initialised
 * once, then `tf.setBackend` switches between them. Every case differentiates
 * L(x, w) = sum(conv2d(x, w) * r) for a fixed random r, so dL/dy = r reaches both kernels.
 *
 * Tolerance: 1e-4 relative (DESIGN.md's cross-backend target). Each gradient entry is a float32
 * sum of at most N*H*W*k*k*C ~ 1,600 products, so the two summation orders differ by roughly
 * sqrt(terms) * 6e-8 ~ 3e-6 relative: 1e-4 has a 30x margin, while a wrong tap, stride or
 * padding changes the result by O(1).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/backend';
import { CASES, caseData, convGrads } from './helpers/convCases';
import { relativeL2, relativeMax } from './helpers/numeric';

beforeAll(async () => {
  await initBackend('wasm');
  await initBackend('cpu');
});

describe('the wasm backend has a kernel for each convolution gradient', () => {
  it.each([tf.Conv2DBackpropFilter, tf.Conv2DBackpropInput])('%s is registered for wasm', (kernelName) => {
    expect(tf.getKernel(kernelName, 'wasm')).toBeDefined();
  });
});

describe.each(CASES.map((c, i) => [c.name, c, i] as const))('conv2d %s', (_name, c, index) => {
  const data = caseData(c, 1000 + index);
  let cpu: { dx: Float32Array; dw: Float32Array };
  let wasm: { dx: Float32Array; dw: Float32Array };

  beforeAll(async () => {
    await tf.setBackend('cpu');
    cpu = await convGrads(c, data);
    await tf.setBackend('wasm');
    wasm = await convGrads(c, data);
  });

  it('the reference gradients are not trivially zero', () => {
    expect(Math.max(...cpu.dx.map(Math.abs))).toBeGreaterThan(0.1);
    expect(Math.max(...cpu.dw.map(Math.abs))).toBeGreaterThan(0.1);
  });

  it('input gradient on wasm equals the cpu reference to 1e-4 (relative L2)', () => {
    expect(relativeL2(wasm.dx, cpu.dx)).toBeLessThan(1e-4);
  });

  it('input gradient on wasm equals the cpu reference to 1e-4 (max error over max magnitude)', () => {
    expect(relativeMax(wasm.dx, cpu.dx)).toBeLessThan(1e-4);
  });

  it('weight gradient on wasm equals the cpu reference to 1e-4 (relative L2)', () => {
    expect(relativeL2(wasm.dw, cpu.dw)).toBeLessThan(1e-4);
  });

  it('weight gradient on wasm equals the cpu reference to 1e-4 (max error over max magnitude)', () => {
    expect(relativeMax(wasm.dw, cpu.dw)).toBeLessThan(1e-4);
  });
});

describe('the wasm convolution gradients release their intermediates', () => {
  // One stride-1 case (both replacement kernels) and one stride-2 case (the input gradient
  // falls back to tfjs's own kernel after the composer has been opened).
  const leakCases = [CASES[0], CASES[4]];

  beforeAll(async () => {
    await tf.setBackend('wasm');
  });

  it.each(leakCases.map((c) => [c.name, c] as const))('%s: engine tensor count is unchanged after 5 gradient calls', async (_name, c) => {
    const data = caseData(c, 7);
    await convGrads(c, data); // warm-up: any one-time allocation happens here
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await convGrads(c, data);
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(leakCases.map((c) => [c.name, c] as const))('%s: wasm backend buffer count is unchanged after 5 gradient calls', async (_name, c) => {
    // The composed kernels allocate backend buffers the engine never sees; count those directly.
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const data = caseData(c, 7);
    await convGrads(c, data);
    const before = backend.numDataIds();
    for (let i = 0; i < 5; i++) await convGrads(c, data);
    expect(backend.numDataIds()).toBe(before);
  });
});
