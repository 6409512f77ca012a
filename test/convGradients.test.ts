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
import { Rng } from '../src/rng/rng';
import { relativeL2, relativeMax } from './helpers/numeric';

interface ConvCase {
  name: string;
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride: 1 | 2;
  pad: 'same' | 'valid';
}

function convCase(batch: number, height: number, width: number, inChannels: number, outChannels: number, kernel: number, stride: 1 | 2, pad: 'same' | 'valid'): ConvCase {
  const name = `k${kernel} s${stride} ${pad}, ${batch}x${height}x${width}x${inChannels} -> ${outChannels}`;
  return { name, batch, height, width, inChannels, outChannels, kernel, stride, pad };
}

const CASES: ConvCase[] = [
  convCase(1, 8, 8, 3, 4, 3, 1, 'same'),
  convCase(3, 7, 7, 1, 8, 3, 1, 'same'),
  convCase(3, 7, 7, 4, 5, 3, 1, 'valid'),
  convCase(1, 8, 8, 2, 3, 3, 1, 'valid'),
  // SAME with stride 2 on an even size pads 0 above and 1 below: the asymmetric case.
  convCase(3, 8, 8, 3, 4, 3, 2, 'same'),
  convCase(1, 7, 7, 8, 8, 3, 2, 'same'),
  // VALID with stride 2 on an even size never reads the last row and column.
  convCase(3, 8, 8, 2, 3, 3, 2, 'valid'),
  convCase(1, 7, 7, 4, 2, 3, 2, 'valid'),
  convCase(3, 4, 4, 16, 16, 3, 2, 'same'),
  convCase(3, 2, 2, 4, 4, 3, 1, 'same'),
  convCase(3, 5, 8, 3, 4, 3, 1, 'same'),
  convCase(3, 8, 8, 16, 8, 1, 1, 'valid'),
  convCase(1, 7, 7, 3, 6, 1, 1, 'same'),
  convCase(3, 7, 7, 4, 4, 1, 2, 'same'),
  convCase(1, 8, 8, 3, 5, 1, 2, 'valid'),
];

interface ConvData {
  x: Float32Array;
  w: Float32Array;
  r: Float32Array;
  xShape: [number, number, number, number];
  wShape: [number, number, number, number];
  rShape: [number, number, number, number];
}

function outSize(size: number, c: ConvCase): number {
  return c.pad === 'same' ? Math.ceil(size / c.stride) : Math.ceil((size - c.kernel + 1) / c.stride);
}

function caseData(c: ConvCase, seed: number): ConvData {
  const rng = new Rng(seed);
  const xShape: ConvData['xShape'] = [c.batch, c.height, c.width, c.inChannels];
  const wShape: ConvData['wShape'] = [c.kernel, c.kernel, c.inChannels, c.outChannels];
  const rShape: ConvData['rShape'] = [c.batch, outSize(c.height, c), outSize(c.width, c), c.outChannels];
  const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return { x: rng.gaussianFloat32(n(xShape)), w: rng.gaussianFloat32(n(wShape)), r: rng.gaussianFloat32(n(rShape)), xShape, wShape, rShape };
}

/** dL/dx and dL/dw of L = sum(conv2d(x, w) * r) on the current backend. */
function convGrads(c: ConvCase, d: ConvData): { dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor4d(d.x, d.xShape);
    const w = tf.tensor4d(d.w, d.wShape);
    const r = tf.tensor4d(d.r, d.rShape);
    const loss = (xv: tf.Tensor, wv: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xv as tf.Tensor4D, wv as tf.Tensor4D, c.stride, c.pad), r)) as tf.Scalar;
    const [dx, dw] = tf.grads(loss)([x, w]);
    expect(dx.shape).toEqual(d.xShape);
    expect(dw.shape).toEqual(d.wShape);
    return { dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}



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
    cpu = convGrads(c, data);
    await tf.setBackend('wasm');
    wasm = convGrads(c, data);
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

  it.each(leakCases.map((c) => [c.name, c] as const))('%s: engine tensor count is unchanged after 5 gradient calls in tidy', (_name, c) => {
    const data = caseData(c, 7);
    convGrads(c, data); // warm-up: any one-time allocation happens here
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) convGrads(c, data);
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each(leakCases.map((c) => [c.name, c] as const))('%s: wasm backend buffer count is unchanged after 5 gradient calls', (_name, c) => {
    // The composed kernels allocate backend buffers the engine never sees; count those directly.
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const data = caseData(c, 7);
    convGrads(c, data);
    const before = backend.numDataIds();
    for (let i = 0; i < 5; i++) convGrads(c, data);
    expect(backend.numDataIds()).toBe(before);
  });
});
