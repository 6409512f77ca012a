/**
 * The project's own kernels (src/backend/fusedKernels.ts, wasmKernels.ts, convGradients.ts) and
 * the custom-gradient ops in src/model/layers.ts, each against the reference: the plain tfjs ops
 * differentiated by tfjs's autodiff on the cpu backend.
 *
 * - GroupNorm (+ swish) and swish: the fused kernels on cpu, the composite custom-gradient path on
 *   cpu (what tensorflow runs), and the fused kernels on wasm and on webgpu (WGSL, run here by
 *   Dawn's OpenGL ES backend on Mesa's llvmpipe), each vs the reference composition on cpu:
 *   values and the gradients for x, gamma and beta to 1e-5 relative.
 * - wasm replacements (BatchMatMul, Identity, Sum, Concat, SplitV, the convolution gradients at
 *   the U-Net's strides and kernel sizes) vs the cpu backend's own kernels, to 1e-5 relative.
 * - Determinism (same inputs, same bits) and no leaked tensors or wasm buffers.
 *
 * Tolerance: every compared entry is a float32 sum of at most a few hundred terms in a different
 * order (or with float64 partial sums), ~sqrt(terms) * 6e-8 ~ 1e-6 relative; 1e-5 leaves a 10x
 * margin, while a wrong index, group or formula changes results by O(1). Shapes are small: jest's
 * vm context makes the cpu backend ~10x slower than plain Node.
 */
import * as tf from '@tensorflow/tfjs-core';
import { convGradientTuning } from '../src/backend/convGradients';
import { GROUP_NORM, SWISH } from '../src/backend/fusedKernels';
import { Params, conv, dense, groupNormAct, groupNormComposite, nin, swish, swishComposite } from '../src/model/layers';
import { Rng } from '../src/rng/rng';
import { initTestBackends } from './helpers/backends';
import { relativeL2, relativeMax } from './helpers/numeric';

const TOL = 1e-5;



function expectClose(actual: Float32Array, expected: Float32Array, what: string): void {
  expect({ what, length: actual.length }).toEqual({ what, length: expected.length });
  expect({ what, relL2: relativeL2(actual, expected) < TOL }).toEqual({ what, relL2: true });
  expect({ what, relMax: relativeMax(actual, expected) < TOL }).toEqual({ what, relMax: true });
}

function gaussian(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const v = new Rng(seed).gaussianFloat32(n);
  for (let i = 0; i < n; i++) v[i] = offset + scale * v[i];
  return v;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

// ---- GroupNorm and swish ----------------------------------------------------------------------------

/** The plain composition the U-Net used before (autodiff reference). */
function referenceGroupNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number, withSwish: boolean): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const grouped = tf.reshape(x, [n, h * w, groups, c / groups]);
  const { mean, variance } = tf.moments(grouped, [1, 3], true);
  const normed = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, eps)));
  const y = tf.add(tf.mul(tf.reshape(normed, [n, h, w, c]), gamma), beta) as tf.Tensor4D;
  return withSwish ? tf.mul(y, tf.sigmoid(y)) : y;
}

interface NormCase {
  name: string;
  shape: [number, number, number, number];
  groups: number;
  swish: boolean;
  /** Offset and scale of x: a large offset checks the variance for cancellation. */
  offset: number;
  scale: number;
}

const NORM_CASES: NormCase[] = [
  { name: '2x4x4x8, 4 groups, swish', shape: [2, 4, 4, 8], groups: 4, swish: true, offset: 0, scale: 1 },
  { name: '2x4x4x8, 4 groups, no swish', shape: [2, 4, 4, 8], groups: 4, swish: false, offset: 0, scale: 1 },
  { name: '3x5x3x6, 2 groups, swish', shape: [3, 5, 3, 6], groups: 2, swish: true, offset: 0.5, scale: 2 },
  { name: '1x2x2x4, 4 groups of one channel, swish', shape: [1, 2, 2, 4], groups: 4, swish: true, offset: 0, scale: 1 },
  { name: '2x3x3x4, 1 group, offset 3 scale 0.1, no swish', shape: [2, 3, 3, 4], groups: 1, swish: false, offset: 3, scale: 0.1 },
  // More pixels than a webgpu workgroup has threads: each thread sums several.
  { name: '1x24x24x12, 3 groups, offset 1, swish', shape: [1, 24, 24, 12], groups: 3, swish: true, offset: 1, scale: 1 },
  // 100 pixels: three chunks of 32 summed per channel on webgpu, and a short fourth.
  { name: '2x10x10x12, 6 groups, offset -1, swish', shape: [2, 10, 10, 12], groups: 6, swish: true, offset: -1, scale: 1.5 },
];

interface NormData {
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  r: Float32Array;
}

function normData(c: NormCase, seed: number): NormData {
  const ch = c.shape[3];
  return {
    x: gaussian(size(c.shape), seed, c.scale, c.offset),
    gamma: gaussian(ch, seed + 1, 0.5, 1),
    beta: gaussian(ch, seed + 2, 0.5, 0),
    r: gaussian(size(c.shape), seed + 3),
  };
}

type NormImpl = (x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number, withSwish: boolean) => tf.Tensor4D;

const IMPLS: Record<string, NormImpl> = {
  fused: (x, g, b, groups, eps, s) => groupNormAct(x, g, b, groups, eps, s),
  composite: (x, g, b, groups, eps, s) => groupNormComposite(x, g, b, { groups, eps, swish: s }),
  reference: referenceGroupNorm,
};

/** The values of tensors made by f in a tidy, read back asynchronously (webgpu has no synchronous
 * read in Node). */
async function readAll(f: () => tf.Tensor[]): Promise<Float32Array[]> {
  const tensors = tf.tidy(f);
  const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(tensors);
  return values;
}

/** y and the gradients of L = sum(y * r) for x, gamma and beta, on the current backend. */
function normResults(impl: NormImpl, c: NormCase, d: NormData): Promise<Float32Array[]> {
  return readAll(() => {
    const x = tf.tensor4d(d.x, c.shape);
    const gamma = tf.tensor1d(d.gamma);
    const beta = tf.tensor1d(d.beta);
    const r = tf.tensor4d(d.r, c.shape);
    const y = impl(x, gamma, beta, c.groups, 1e-6, c.swish);
    const grads = tf.grads((xv: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(impl(xv as tf.Tensor4D, g, b, c.groups, 1e-6, c.swish), r)) as tf.Scalar)([x, gamma, beta]);
    return [y, ...grads];
  });
}

beforeAll(() => initTestBackends('webgpu', 'wasm', 'cpu'), 60_000);

describe('the fused kernels are registered', () => {
  it.each(['cpu', 'wasm', 'webgpu'])('%s has DdpmGroupNorm and DdpmSwish', (backend) => {
    expect(tf.getKernel(GROUP_NORM, backend)).toBeDefined();
    expect(tf.getKernel(SWISH, backend)).toBeDefined();
  });
});

describe.each(NORM_CASES.map((c, i) => [c.name, c, i] as const))('GroupNorm %s', (_name, c, index) => {
  const data = normData(c, 100 + 10 * index);
  const labels = ['y', 'dx', 'dgamma', 'dbeta'];
  let reference: Float32Array[];

  beforeAll(async () => {
    await tf.setBackend('cpu');
    reference = await normResults(IMPLS.reference, c, data);
  });

  it('the reference gradients are not trivially zero', () => {
    for (const g of reference.slice(1)) expect(Math.max(...g.map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('fused kernel on cpu equals the autodiff reference (values and gradients)', async () => {
    await tf.setBackend('cpu');
    (await normResults(IMPLS.fused, c, data)).forEach((a, i) => expectClose(a, reference[i], `cpu fused ${labels[i]}`));
  });

  it('composite custom-gradient path on cpu equals the autodiff reference', async () => {
    await tf.setBackend('cpu');
    (await normResults(IMPLS.composite, c, data)).forEach((a, i) => expectClose(a, reference[i], `cpu composite ${labels[i]}`));
  });

  it.each(['wasm', 'webgpu'])('fused kernel on %s equals the cpu autodiff reference', async (backend) => {
    await tf.setBackend(backend);
    (await normResults(IMPLS.fused, c, data)).forEach((a, i) => expectClose(a, reference[i], `${backend} fused ${labels[i]}`));
  });
});

describe('swish', () => {
  // 63 values: the SIMD kernel's 4-wide loop and its scalar tail.
  const shape = [3, 7, 3];
  const x = gaussian(size(shape), 7, 3);
  const r = gaussian(size(shape), 8);
  const run = (f: (t: tf.Tensor) => tf.Tensor) => readAll(() => {
    const xt = tf.tensor(x, shape);
    const rt = tf.tensor(r, shape);
    const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(f(v), rt)) as tf.Scalar)(xt);
    return [f(xt), dx];
  });
  let reference: Float32Array[];

  beforeAll(async () => {
    await tf.setBackend('cpu');
    reference = await run((v) => tf.mul(v, tf.sigmoid(v)));
  });

  it.each([
    ['fused kernel on cpu', 'cpu', swish],
    ['composite path on cpu', 'cpu', swishComposite],
    ['fused kernel on wasm', 'wasm', swish],
    ['fused kernel on webgpu', 'webgpu', swish],
  ] as const)('%s equals the autodiff reference', async (_label, backend, f) => {
    await tf.setBackend(backend);
    const [y, dx] = await run(f as (t: tf.Tensor) => tf.Tensor);
    expectClose(y, reference[0], 'swish y');
    expectClose(dx, reference[1], 'swish dx');
  });
});

// ---- conv, nin and dense with a fused bias ---------------------------------------------------------

describe('conv, nin and dense layers (fused bias) equal conv2d/matMul + add', () => {
  type Layer = 'conv s1' | 'conv s2' | 'conv s1, 13 outputs' | 'nin' | 'dense';
  const setups: Record<Layer, { xShape: number[]; kShape: number[]; ref: (x: tf.Tensor, k: tf.Tensor, b: tf.Tensor) => tf.Tensor; mine: (p: Params, x: tf.Tensor) => tf.Tensor }> = {
    'conv s1': { xShape: [2, 5, 5, 3], kShape: [3, 3, 3, 4], ref: (x, k, b) => tf.add(tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), b), mine: (p, x) => conv(p, 'l', x as tf.Tensor4D) },
    'conv s2': { xShape: [2, 6, 6, 3], kShape: [3, 3, 3, 4], ref: (x, k, b) => tf.add(tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 2, 'same'), b), mine: (p, x) => conv(p, 'l', x as tf.Tensor4D, 2) },
    // wasm's direct kernel: bias in blocks of 8, 4 and 1 outputs, rows of 4 columns and 1.
    'conv s1, 13 outputs': { xShape: [2, 5, 5, 6], kShape: [3, 3, 6, 13], ref: (x, k, b) => tf.add(tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), b), mine: (p, x) => conv(p, 'l', x as tf.Tensor4D) },
    nin: { xShape: [2, 3, 3, 5], kShape: [5, 4], ref: (x, k, b) => tf.add(tf.conv2d(x as tf.Tensor4D, tf.reshape(k, [1, 1, 5, 4]) as tf.Tensor4D, 1, 'valid'), b), mine: (p, x) => nin(p, 'l', x as tf.Tensor4D) },
    dense: { xShape: [3, 5], kShape: [5, 4], ref: (x, k, b) => tf.add(tf.matMul(x as tf.Tensor2D, k as tf.Tensor2D), b), mine: (p, x) => dense(p, 'l', x) },
  };
  const run = (layer: Layer, useRef: boolean) => tf.tidy(() => {
    const { xShape, kShape, ref, mine } = setups[layer];
    const x = tf.tensor(gaussian(size(xShape), 71), xShape);
    const k = tf.tensor(gaussian(size(kShape), 72), kShape);
    const b = tf.tensor1d(gaussian(kShape[kShape.length - 1], 73));
    const f = (xv: tf.Tensor, kv: tf.Tensor, bv: tf.Tensor) => (useRef ? ref(xv, kv, bv) : mine({ 'l/kernel': kv, 'l/bias': bv }, xv));
    const y = f(x, k, b);
    const r = tf.tensor(gaussian(y.size, 74), y.shape);
    const grads = tf.grads((xv: tf.Tensor, kv: tf.Tensor, bv: tf.Tensor) => tf.sum(tf.mul(f(xv, kv, bv), r)) as tf.Scalar)([x, k, b]);
    return [y, ...grads].map((t) => t.dataSync() as Float32Array);
  });
  it.each(['conv s1', 'conv s2', 'conv s1, 13 outputs', 'nin', 'dense'] as Layer[])('%s on cpu and on wasm equals the cpu reference (values and gradients)', async (layer) => {
    await tf.setBackend('cpu');
    const expected = run(layer, true);
    const onCpu = run(layer, false);
    await tf.setBackend('wasm');
    const onWasm = run(layer, false);
    expected.forEach((e, i) => {
      expectClose(onCpu[i], e, `${layer} cpu #${i}`);
      expectClose(onWasm[i], e, `${layer} wasm #${i}`);
    });
  });
});

// ---- wasm kernel replacements -------------------------------------------------------------------

/** Runs f on cpu and on wasm with the same inputs; returns both results. */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: Float32Array[]; wasm: Float32Array[] }> {
  const run = () => tf.tidy(() => {
    const out = f();
    return (Array.isArray(out) ? out : [out]).map((t) => t.dataSync() as Float32Array);
  });
  await tf.setBackend('cpu');
  const cpu = run();
  await tf.setBackend('wasm');
  const wasm = run();
  return { cpu, wasm };
}

function expectAllClose(r: { cpu: Float32Array[]; wasm: Float32Array[] }, what: string): void {
  expect(r.wasm.length).toBe(r.cpu.length);
  r.cpu.forEach((expected, i) => expectClose(r.wasm[i], expected, `${what} #${i}`));
}

describe('wasm BatchMatMul (per-matrix XNNPACK, explicit transposes)', () => {
  const cases: [string, number[], number[], boolean, boolean][] = [
    ['batch 3', [3, 5, 7], [3, 7, 4], false, false],
    ['batch 3, transposeA', [3, 7, 5], [3, 7, 4], true, false],
    ['batch 3, transposeB', [3, 5, 7], [3, 4, 7], false, true],
    ['batch 3, both transposed', [3, 7, 5], [3, 4, 7], true, true],
    ['one matrix, transposeA (dense weight gradient)', [6, 5], [6, 4], true, false],
    ['one matrix, transposeB (dense input gradient)', [5, 6], [4, 6], false, true],
    ['right operand broadcast', [2, 3, 5, 6], [6, 4], false, false],
    ['left operand broadcast', [5, 6], [3, 6, 4], false, false],
    ['rank 4 batch, transposeB (attention logits)', [2, 2, 9, 4], [2, 2, 9, 4], false, true],
  ];
  it.each(cases)('%s equals the cpu kernel', async (_name, aShape, bShape, ta, tb) => {
    const a = gaussian(size(aShape), 11);
    const b = gaussian(size(bShape), 12);
    const r = await onBoth(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), ta, tb));
    await tf.setBackend('wasm');
    expect(tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), ta, tb).shape)).toEqual(
      tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), ta, tb).shape));
    expectAllClose(r, 'matMul');
  });

  it('gradients of a batched attention product equal the cpu ones', async () => {
    const q = gaussian(2 * 6 * 4, 13);
    const k = gaussian(2 * 6 * 4, 14);
    const r = await onBoth(() => {
      const qt = tf.tensor3d(q, [2, 6, 4]);
      const kt = tf.tensor3d(k, [2, 6, 4]);
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.matMul(tf.softmax(tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, false, true)), b as tf.Tensor3D))) as tf.Scalar;
      return tf.grads(f)([qt, kt]);
    });
    expectAllClose(r, 'attention gradients');
  });
});

describe('wasm Sum over leading axes', () => {
  const x = gaussian(4 * 5 * 6, 21);
  it.each([
    ['axes 0,1', [0, 1], false],
    ['axes 0,1 keepDims', [0, 1], true],
    ['axis 0', [0], false],
    ['axes 1,0 (unsorted)', [1, 0], false],
    ['axis 2 (not leading: original kernel)', [2], false],
    ['all axes (original kernel)', [0, 1, 2], false],
  ] as const)('%s equals the cpu kernel', async (_name, axes, keepDims) => {
    const r = await onBoth(() => tf.sum(tf.tensor3d(x, [4, 5, 6]), [...axes], keepDims));
    expectAllClose(r, 'sum');
  });
});

describe('wasm Concat and SplitV', () => {
  const a = gaussian(2 * 3 * 4 * 5, 31);
  const b = gaussian(2 * 3 * 4 * 3, 32);
  const c = gaussian(2 * 3 * 4 * 300, 33);
  it('concat on the channel axis, and its gradient (SplitV), equal the cpu kernels', async () => {
    const r = await onBoth(() => {
      const at = tf.tensor4d(a, [2, 3, 4, 5]);
      const bt = tf.tensor4d(b, [2, 3, 4, 3]);
      const weights = tf.tensor4d(gaussian(2 * 3 * 4 * 8, 34), [2, 3, 4, 8]);
      const [da, db] = tf.grads((u: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(tf.concat([u, v], 3), weights)) as tf.Scalar)([at, bt]);
      return [tf.concat([at, bt], 3), da, db];
    });
    expectAllClose(r, 'concat');
  });

  it('long rows (copied with set), three inputs, axis 1', async () => {
    const r = await onBoth(() => {
      const parts = [tf.tensor4d(a, [2, 3, 4, 5]), tf.tensor4d(a, [2, 3, 4, 5]), tf.slice(tf.tensor4d(c, [2, 3, 4, 300]), [0, 0, 0, 0], [2, 3, 4, 5])];
      return [tf.concat([tf.tensor4d(c, [2, 3, 4, 300]), tf.tensor4d(c, [2, 3, 4, 300])], 3), tf.concat(parts, 1)];
    });
    expectAllClose(r, 'concat long');
  });

  it('split into sizes and into equal parts', async () => {
    const r = await onBoth(() => [...tf.split(tf.tensor4d(c, [2, 3, 4, 300]), [100, 7, 193], 3), ...tf.split(tf.tensor4d(a, [2, 3, 4, 5]), 3, 1)]);
    expectAllClose(r, 'split');
  });
});

describe('wasm Identity shares data', () => {
  it('a clone keeps its values after the original is disposed, without a new buffer', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const x = tf.tensor1d([1, 2, 3]);
    const before = backend.numDataIds();
    const y = tf.clone(x);
    expect(backend.numDataIds()).toBe(before);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
    expect(backend.numDataIds()).toBe(before - 1);
  });
});

describe('wasm convolution gradients at the U-Net\'s strides and kernel sizes', () => {
  const cases: [string, number[], number, number, 1 | 2, 'same' | 'valid'][] = [
    ['k3 s1 same 2x6x6x5 -> 7', [2, 6, 6, 5], 7, 3, 1, 'same'],
    ['k3 s2 same 2x6x6x4 -> 3', [2, 6, 6, 4], 3, 3, 2, 'same'],
    ['k3 s2 same 1x7x7x3 -> 2 (odd size)', [1, 7, 7, 3], 2, 3, 2, 'same'],
    ['k1 s1 2x4x4x6 -> 5', [2, 4, 4, 6], 5, 1, 1, 'valid'],
    ['k3 s1 valid 2x5x6x3 -> 4', [2, 5, 6, 3], 4, 3, 1, 'valid'],
    ['k3 s2 valid 1x8x8x2 -> 3', [1, 8, 8, 2], 3, 3, 2, 'valid'],
    ['k3 s1 same 3x9x9x2 -> 3', [3, 9, 9, 2], 3, 3, 1, 'same'],
    // 6 -> 13: the direct kernel's blocks of 4 and 1 input by 8, 4 and 1 output channels.
    ['k3 s1 same 2x5x5x6 -> 13', [2, 5, 5, 6], 13, 3, 1, 'same'],
    // 21 -> 2: outputs below 4 take input channels 16, 4 and 1 at a time.
    ['k3 s2 same 2x6x6x21 -> 2', [2, 6, 6, 21], 2, 3, 2, 'same'],
    // 60 inputs: wasm's direct forward convolution runs them in chunks of 56 (its sums continue).
    ['k3 s1 same 1x4x5x60 -> 9', [1, 4, 5, 60], 9, 3, 1, 'same'],
  ];
  // The weight gradient's forms (src/backend/convGradients.ts): the direct SIMD kernel, over all
  // examples at once and in chunks of one example (its sums then continue across chunks), and the
  // convolution form used without wasm SIMD.
  const tunings: [string, typeof convGradientTuning][] = [
    ['direct SIMD kernel', { direct: true, chunkFloats: 65536 }],
    ['direct SIMD kernel, one example per chunk', { direct: true, chunkFloats: 1 }],
    ['direct SIMD kernel, two examples per chunk', { direct: true, chunkFloats: 2 * 9 * 9 * (2 + 3) }],
    ['convolution form', { direct: false, chunkFloats: 65536 }],
  ];
  const saved = { ...convGradientTuning };
  afterAll(() => {
    Object.assign(convGradientTuning, saved);
  });
  describe.each(tunings)('weight gradient in the %s', (_form, tuning) => {
    it.each(cases)('%s: dx, dW and db equal the cpu kernels', async (_name, xShape, cout, k, stride, pad) => {
      Object.assign(convGradientTuning, tuning);
      const x = gaussian(size(xShape), 41);
      const w = gaussian(k * k * xShape[3] * cout, 42);
      const r = await onBoth(() => {
        const xt = tf.tensor4d(x, xShape as [number, number, number, number]);
        const wt = tf.tensor4d(w, [k, k, xShape[3], cout]);
        const bias = tf.tensor1d(gaussian(cout, 43));
        const y = tf.add(tf.conv2d(xt, wt, stride, pad), bias);
        const weights = tf.tensor(gaussian(y.size, 44), y.shape);
        const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), c), weights)) as tf.Scalar)([xt, wt, bias]);
        return [y, ...grads];
      });
      Object.assign(convGradientTuning, saved);
      expectAllClose(r, 'conv');
    });
  });

  it('the direct kernel gives the same bits in chunks of one example as over the whole batch (each sum continues in order)', async () => {
    await tf.setBackend('wasm');
    const weightGradient = (chunkFloats: number) => {
      Object.assign(convGradientTuning, { direct: true, chunkFloats });
      return tf.tidy(() => {
        const x = tf.tensor4d(gaussian(3 * 9 * 9 * 6, 45), [3, 9, 9, 6]);
        const dy = tf.tensor4d(gaussian(3 * 9 * 9 * 13, 46), [3, 9, 9, 13]);
        const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 6, 13] };
        return Buffer.from((tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor).dataSync().buffer);
      });
    };
    const whole = weightGradient(65536);
    const chunked = weightGradient(1);
    Object.assign(convGradientTuning, saved);
    expect(whole.equals(chunked)).toBe(true);
  });
});

// ---- determinism and memory -------------------------------------------------------------------

describe('on wasm, the new kernels are deterministic and release their intermediates', () => {
  const shape: [number, number, number, number] = [2, 4, 4, 8];
  const x = gaussian(size(shape), 51);
  const r = gaussian(size(shape), 52);
  const step = () => tf.tidy(() => {
    const xt = tf.tensor4d(x, shape);
    const g = tf.ones([8]);
    const b = tf.zeros([8]);
    const rt = tf.tensor4d(r, shape);
    const w = tf.tensor4d(gaussian(9 * 8 * 8, 53), [3, 3, 8, 8]);
    const f = (a: tf.Tensor, gv: tf.Tensor, bv: tf.Tensor, wv: tf.Tensor) => {
      const h = groupNormAct(a as tf.Tensor4D, gv, bv, 4, 1e-6, true);
      const c = tf.conv2d(h, wv as tf.Tensor4D, 1, 'same');
      const t = tf.reshape(c, [2, 16, 8]);
      const att = tf.matMul(tf.softmax(tf.matMul(t, t, false, true)), t);
      return tf.sum(tf.mul(tf.add(tf.reshape(att, shape), tf.slice(swish(tf.concat([c, a], 3)), [0, 0, 0, 0], shape)), rt)) as tf.Scalar;
    };
    return tf.grads(f)([xt, g, b, w]).map((t) => t.dataSync() as Float32Array);
  });

  beforeAll(async () => {
    await tf.setBackend('wasm');
  });

  it('two runs give the same bits', () => {
    const a = step();
    const b = step();
    a.forEach((v, i) => expect(Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.byteLength), Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength))).toBe(0));
  });

  it('engine tensors and wasm buffers are unchanged after 3 steps', () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    step();
    const tensors = tf.memory().numTensors;
    const buffers = backend.numDataIds();
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(buffers);
  });
});
