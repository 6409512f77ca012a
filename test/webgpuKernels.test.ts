/**
 * This project's webgpu kernels (src/backend/webgpu/) against the cpu backend's reference
 * kernels, on tfjs's real webgpu backend: Dawn runs it here through its OpenGL ES backend on
 * Mesa's llvmpipe (DDPM_WEBGPU_DAWN_BACKEND=opengles), so the WGSL compiled and run is the
 * WGSL a GPU runs.
 *
 * Tolerance as in convGradients.test.ts: 1e-4 relative, against ~1e-6 for float32 summation-order
 * differences; a wrong tap, stride, padding, tile edge or k slice is off by O(1).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { countDispatches } from '../src/backend/webgpu/dispatchCount';
import { choosesSplitK } from '../src/backend/webgpu/deterministicMatMul';
import { planSplits } from '../src/backend/webgpu/filterGradient';
import { planRowPasses } from '../src/backend/webgpu/rowSum';
import { readInto } from '../src/backend/readBack';
import { SUBMIT_BATCH_SIZE } from '../src/backend/webgpu/register';
import { webgpuInternals } from '../src/backend/webgpu/internals';
import { groupNormAct, swish } from '../src/model/layers';
import { CASES, ConvCase, caseData, convCase, convGrads } from './helpers/convCases';
import { initTestBackends } from './helpers/backends';
import { relativeL2, relativeMax } from './helpers/numeric';

// Past the shared cases: several 64-wide tiles in m and n, edges that cut tiles, and k long
// enough to be cut into slices (the last one short).
const LARGE: ConvCase[] = [
  convCase(3, 13, 13, 16, 70, 3, 1, 'same'),
  convCase(4, 16, 16, 32, 32, 3, 1, 'same'),
  convCase(5, 12, 12, 8, 3, 3, 2, 'same'),
  convCase(2, 20, 20, 65, 9, 1, 1, 'valid'),
  // k = 700 rows in two slices of 352: the second ends mid-slab.
  convCase(7, 10, 10, 4, 5, 3, 1, 'same'),
];

beforeAll(() => initTestBackends('cpu', 'webgpu'), 60_000);

function values(shape: number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  // Mean 0.5 and a spread: a sum that drops or doubles a row is off by O(1) relative.
  return Float32Array.from({ length: n }, (_, i) => 0.5 + Math.sin(i * 12.9898 + seed * 78.233) * 0.75);
}

describe('planSplits cuts k into slices', () => {
  it.each([
    [576, 64, 65_536], [576, 64, 300], [9, 3, 17], [4096, 4096, 1_000_000], [144, 70, 507],
  ])('m %i, n %i, k %i: slices of whole 16-row slabs that cover k, none empty, none under 256 rows unless k is', (m, n, k) => {
    const { splits, sliceRows } = planSplits(m, n, k);
    expect(sliceRows % 16).toBe(0);
    expect(splits * sliceRows).toBeGreaterThanOrEqual(k);
    expect((splits - 1) * sliceRows).toBeLessThan(k);
    if (splits > 1) expect(sliceRows).toBeGreaterThanOrEqual(256);
  });

  it('splits the U-Net\'s largest weight gradient (ch 64, 32x32, batch 64) into enough workgroups', () => {
    const { splits } = planSplits(576, 64, 64 * 32 * 32);
    expect(splits * 9).toBeGreaterThanOrEqual(1000);
  });
});

describe('the conv gradients on webgpu by default', () => {
  it('the weight gradient is this project\'s tiled kernel', () => {
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'webgpu')?.kernelFunc.name).toBe('tiledConvFilterGradient');
  });

  it('the input gradient is a forward convolution at stride 1, else tfjs\'s tiled (matmul) kernel, not its naive one', () => {
    expect(tf.getKernel(tf.Conv2DBackpropInput, 'webgpu')?.kernelFunc.name).toBe('convInputGradientAsConv');
    expect(tf.env().getBool('WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE')).toBe(false);
  });

  it('tfjs submits its queue every 64 dispatches, not 15 (the step is bound by the host\'s time to issue them)', () => {
    expect(SUBMIT_BATCH_SIZE).toBe(64);
    expect(tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')).toBe(SUBMIT_BATCH_SIZE);
  });
});

describe.each([...CASES, ...LARGE].map((c, i) => [c.name, c, i] as const))('conv2d %s', (_name, c, index) => {
  const data = caseData(c, 2000 + index);
  let cpu: { dx: Float32Array; dw: Float32Array };
  let webgpu: { dx: Float32Array; dw: Float32Array };
  let programs: Record<string, number>;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    cpu = await convGrads(c, data);
    await tf.setBackend('webgpu');
    const counted = await countDispatches(() => convGrads(c, data));
    webgpu = counted.result;
    programs = counted.dispatches ?? {};
  });

  it('the reference weight gradient is not trivially zero', () => {
    expect(Math.max(...cpu.dw.map(Math.abs))).toBeGreaterThan(0.1);
  });

  it('tiled weight gradient on webgpu equals the cpu reference to 1e-4 (relative L2 and max error)', () => {
    expect(relativeL2(webgpu.dw, cpu.dw)).toBeLessThan(1e-4);
    expect(relativeMax(webgpu.dw, cpu.dw)).toBeLessThan(1e-4);
  });

  it(`input gradient on webgpu (${c.stride === 1 ? 'a forward convolution of dy with the flipped, transposed filter' : 'tfjs\'s tiled kernel'}) equals the cpu reference to 1e-4`, () => {
    expect(relativeMax(webgpu.dx, cpu.dx)).toBeLessThan(1e-4);
    expect(Object.keys(programs).includes('FilterFlipTransposeProgram')).toBe(c.stride === 1);
    expect(Object.keys(programs).includes('Conv2DDerInputMMProgram')).toBe(c.stride === 2);
  });
});

describe('the tiled weight gradient', () => {
  beforeAll(async () => {
    await tf.setBackend('webgpu');
  });

  it('gives the same bits on every call (the k slices are summed in a fixed order)', async () => {
    const c = LARGE[1];
    const data = caseData(c, 5);
    const first = (await convGrads(c, data)).dw;
    for (let i = 0; i < 3; i++) expect(Buffer.compare(Buffer.from((await convGrads(c, data)).dw.buffer), Buffer.from(first.buffer))).toBe(0);
  });

  it('releases its partial tiles: webgpu buffer count unchanged after 5 calls', async () => {
    const backend = tf.backend() as unknown as WebGPUBackend & { numDataIds(): number };
    const c = LARGE[0];
    const data = caseData(c, 7);
    await convGrads(c, data);
    const before = backend.numDataIds();
    for (let i = 0; i < 5; i++) await convGrads(c, data);
    expect(backend.numDataIds()).toBe(before);
  });
});

describe('matmuls without float atomics (deterministicMatMul.ts)', () => {
  it.each([
    [{ batch: 1, m: 64, n: 128, k: 2304 }, 8, true],
    [{ batch: 1, m: 64, n: 128, k: 1999 }, 8, false],
    [{ batch: 2, m: 64, n: 128, k: 2304 }, 8, false],
    [{ batch: 1, m: 8, n: 16, k: 4096 }, 8, false], // 128 outputs: tfjs's reduce program
    [{ batch: 1, m: 1024, n: 128, k: 2304 }, 8, false], // 128 tiles: the packed program
    [{ batch: 1, m: 8, n: 512, k: 4096 }, 8, true], // m <= 8: up to twice the threshold
  ])('%j with threshold %i: tfjs would split K: %s', (dims, threshold, expected) => {
    expect(choosesSplitK(dims, threshold)).toBe(expected);
  });

  // The ch64 U-Net at batch 1: a 3x3 conv over 256 channels at 8x8 went through im2col, K = 2,304
  // (still so with DDPM_WEBGPU_CONV=tfjs; the matmul case is that product). The tiled forward
  // convolution, the default, sums each output in order without a matmul.
  const cases: Array<[string, () => tf.Tensor, string]> = [
    ['conv2d 1x8x8x256 * 3x3x256x128', () => tf.conv2d(tf.tensor4d(values([1, 8, 8, 256], 1), [1, 8, 8, 256]), tf.tensor4d(values([3, 3, 256, 128], 2).map((v) => (v - 0.5) * 0.05), [3, 3, 256, 128]), 1, 'same'), 'Conv2DTiledProgram'],
    ['matMul 64x2304 * 2304x128', () => tf.matMul(tf.tensor2d(values([64, 2304], 3), [64, 2304]), tf.tensor2d(values([2304, 128], 4).map((v) => v - 0.5), [2304, 128])), 'MatMulSmallOutputSizeProgram'],
  ];

  it.each(cases)('%s: no split-K program, the same bits on every call, the cpu reference to 1e-5', async (_name, f, program) => {
    await tf.setBackend('cpu');
    const reference = await tf.tidy(f).data();
    await tf.setBackend('webgpu');
    const runs: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      const { result, dispatches } = await countDispatches(async () => {
        const y = tf.tidy(f);
        const v = (await y.data()) as Float32Array;
        y.dispose();
        return v;
      });
      expect(Object.keys(dispatches ?? {})).not.toContain('MatMulSplitKProgram');
      expect(Object.keys(dispatches ?? {})).toContain(program);
      runs.push(result);
    }
    expect(relativeMax(runs[0], reference as Float32Array)).toBeLessThan(1e-5);
    for (const r of runs.slice(1)) expect(Buffer.compare(Buffer.from(r.buffer), Buffer.from(runs[0].buffer))).toBe(0);
  });
});

describe('the fused GroupNorm + swish on webgpu', () => {
  it('releases its intermediates (the backward\'s coefficients): webgpu buffer and engine tensor counts unchanged after 5 gradient calls', async () => {
    await tf.setBackend('webgpu');
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const run = async () => {
      const [dx, dgamma, dbeta] = tf.tidy(() => {
        const x = tf.randomNormal([2, 6, 6, 8], 0, 1, 'float32', 3) as tf.Tensor4D;
        const gamma = tf.ones([8]);
        const beta = tf.zeros([8]);
        return tf.grads((xv: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(groupNormAct(xv as tf.Tensor4D, g, b, 4, 1e-6, true)) as tf.Scalar)([x, gamma, beta]);
      });
      await Promise.all([dx.data(), dgamma.data(), dbeta.data()]);
      tf.dispose([dx, dgamma, dbeta]);
    };
    await run();
    const buffers = backend.numDataIds();
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await run();
    expect(backend.numDataIds()).toBe(buffers);
    expect(tf.memory().numTensors).toBe(tensors);
  });
});

describe('element-wise webgpu programs past 65,535 workgroups (a batch-64 ch64 activation has 4,194,304 values)', () => {
  it('swish over 4,194,311 values (65,536 workgroups of 64 and a partial one, folded into a second dispatch dimension) equals x sigmoid(x) everywhere', async () => {
    await tf.setBackend('webgpu');
    const n = 65_535 * 64 + 71;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = ((i * 7919) % 2001) / 200 - 5;
    const y = tf.tidy(() => swish(tf.tensor1d(x)));
    const values = (await y.data()) as Float32Array;
    y.dispose();
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(values[i] - x[i] / (1 + Math.exp(-x[i]))));
    expect(worst).toBeLessThan(1e-5);
  });
});

describe('planRowPasses: a sum\'s rows in chunks of 64, pass after pass', () => {
  it.each([
    [1, [1]], [64, [1]], [65, [2, 1]], [2048, [32, 1]], [4096, [64, 1]], [4097, [65, 2, 1]], [65_536, [1024, 16, 1]],
  ])('%i rows: chunk counts %j', (rows, passes) => {
    expect(planRowPasses(rows)).toEqual(passes);
  });
});

describe('Sum on webgpu', () => {
  type SumCase = { shape: number[]; axis: number | number[] | null; keepDims: boolean; programs: Record<string, number> };
  const rowSum = (passes: number) => ({ RowChunkSumProgram: passes });
  const cases: SumCase[] = [
    // A ch-64 bias gradient at batch 2: 2,048 rows in 32 chunks of 64, then one.
    { shape: [2, 32, 32, 64], axis: [0, 1, 2], keepDims: false, programs: rowSum(2) },
    // The time embedding's broadcast gradient: over space, per example.
    { shape: [3, 5, 7, 6], axis: [1, 2], keepDims: true, programs: rowSum(1) },
    // A dense layer's bias gradient (tfjs's fused matmul is batched: [1, batch, units]).
    { shape: [1, 2, 64], axis: [0, 1], keepDims: false, programs: rowSum(1) },
    // 5,000 rows per column: 79 chunks (the last of 8 rows), then 2 (the last of 15), then one.
    { shape: [5000, 2, 3], axis: 0, keepDims: false, programs: rowSum(3) },
    { shape: [5, 1000, 3], axis: 1, keepDims: false, programs: rowSum(2) },
    { shape: [4, 6, 5], axis: -3, keepDims: false, programs: rowSum(1) },
    { shape: [2, 3, 4, 5], axis: [1, 0], keepDims: true, programs: rowSum(1) },
    // tfjs's own kernel: innermost axes need no transpose; a split run of axes (large enough
    // for tfjs to transpose on the GPU, not the CPU).
    { shape: [6, 7], axis: 1, keepDims: false, programs: { ReduceProgram: 1 } },
    { shape: [4, 8, 6, 10], axis: [1, 3], keepDims: false, programs: { TransposeProgram: 1, ReduceProgram: 1 } },
    { shape: [3, 4, 5], axis: null, keepDims: false, programs: { ReduceProgram: 1 } },
  ];

  async function sumOn(backend: string, c: SumCase, x: Float32Array): Promise<{ shape: number[]; data: Float32Array; dispatches?: Record<string, number> }> {
    await tf.setBackend(backend);
    const { result: y, dispatches } = await countDispatches(async () => tf.tidy(() => tf.sum(tf.tensor(x, c.shape), c.axis ?? undefined, c.keepDims)));
    const data = (await y.data()) as Float32Array;
    const shape = y.shape;
    y.dispose();
    return { shape, data, dispatches };
  }

  it.each(cases.map((c) => [JSON.stringify(c.shape), JSON.stringify(c.axis), c.keepDims, c] as const))('shape %s over axes %s (keepDims %s): the cpu reference\'s shape and values to 1e-5, by the expected programs', async (_s, _a, _k, c) => {
    const x = values(c.shape, c.shape.length);
    const cpu = await sumOn('cpu', c, x);
    const gpu = await sumOn('webgpu', c, x);
    expect(gpu.shape).toEqual(cpu.shape);
    expect(relativeMax(gpu.data, cpu.data)).toBeLessThan(1e-5);
    // The reference is not trivially small: each output sums many values of mean ~0.5.
    expect(Math.min(...cpu.data.map(Math.abs))).toBeGreaterThan(0.1);
    expect(gpu.dispatches).toEqual(c.programs);
  });

  it('an int32 sum is tfjs\'s own kernel, with exact values', async () => {
    await tf.setBackend('webgpu');
    // tfjs's int32 Sum over leading axes gives wrong values on the GPU (here: 6,5,4,3); on the CPU,
    // where tfjs runs it when the input is small and CPU forwarding is on, it is right. This
    // project computes no int32 tensors and turns CPU forwarding off.
    tf.env().set('WEBGPU_CPU_FORWARD', true);
    try {
      const y = tf.sum(tf.tensor3d(Int32Array.from({ length: 24 }, (_, i) => i * 3 - 7), [2, 3, 4], 'int32'), [0, 1]);
      expect(y.dtype).toBe('int32');
      expect(Array.from(await y.data())).toEqual([0, 1, 2, 3].map((c) => [0, 1, 2, 3, 4, 5].reduce((s, r) => s + (r * 4 + c) * 3 - 7, 0)));
      y.dispose();
    } finally {
      tf.env().set('WEBGPU_CPU_FORWARD', false);
    }
  });

  it('a float32 sum of int32 data (tfjs casts int32 without a copy; its own Sum then gives zeros) has exact values', async () => {
    await tf.setBackend('webgpu');
    const ints = tf.tensor3d(Int32Array.from({ length: 24 }, (_, i) => i * 3 - 7), [2, 3, 4], 'int32');
    const y = tf.sum(tf.cast(ints, 'float32'), [0, 1]);
    expect(y.dtype).toBe('float32');
    expect(Array.from(await y.data())).toEqual([0, 1, 2, 3].map((c) => [0, 1, 2, 3, 4, 5].reduce((s, r) => s + (r * 4 + c) * 3 - 7, 0)));
    tf.dispose([ints, y]);
  });

  it('gives the same bits on every call, and releases its chunk sums (webgpu buffer count unchanged)', async () => {
    await tf.setBackend('webgpu');
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const x = tf.tensor(values([2, 32, 32, 64], 9), [2, 32, 32, 64]);
    const once = async () => {
      const y = tf.sum(x, [0, 1, 2]);
      const data = (await y.data()) as Float32Array;
      y.dispose();
      return Buffer.from(data.buffer);
    };
    const first = await once();
    const before = backend.numDataIds();
    for (let i = 0; i < 3; i++) expect(Buffer.compare(await once(), first)).toBe(0);
    expect(backend.numDataIds()).toBe(before);
    x.dispose();
  });
});

describe('readInto: many tensors back from the GPU in one round trip', () => {
  const read = async (backendName: string) => {
    await tf.setBackend(backendName);
    // Past WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD (1,000 values), so that webgpu computes them on the GPU.
    const onGpu = tf.tidy(() => [tf.add(tf.tensor(values([3, 25, 17], 11), [3, 25, 17]), 1), tf.mul(tf.tensor(values([1301], 12), [1301]), 2)]);
    const onCpu = tf.tensor(values([4, 9], 13), [4, 9]); // fresh: webgpu keeps its values on the CPU until a kernel uses them
    const ints = tf.tensor1d([5, -3, 8], 'int32');
    const empty = tf.zeros([0, 4]);
    const tensors = [onGpu[0], onCpu, empty, onGpu[1], ints];
    const offsets = tensors.map((_, i) => tensors.slice(0, i).reduce((n, t) => n + t.size, 0));
    const flat = new Float32Array(tensors.reduce((n, t) => n + t.size, 0));
    const backend = tf.backend() as unknown as { bufferManager?: { getNumUsedBuffers(): number }; tensorMap?: { get(id: object): { values: unknown } } };
    const heldOnGpu = tensors.map((t) => backend.tensorMap?.get(t.dataId)?.values == null);
    const targets = tensors.map((tensor, i) => ({ tensor, out: flat.subarray(offsets[i], offsets[i] + tensor.size) }));
    // The first read's submit also releases buffers of earlier work: count from the second.
    await readInto(targets);
    const buffersBefore = backend.bufferManager?.getNumUsedBuffers();
    await readInto(targets);
    const buffersAfter = backend.bufferManager?.getNumUsedBuffers();
    const expected = new Float32Array(flat.length);
    for (const [i, t] of tensors.entries()) expected.set(await t.data(), offsets[i]);
    tf.dispose([...tensors]);
    return { flat, expected, buffersBefore, buffersAfter, heldOnGpu };
  };

  it.each(['webgpu', 'cpu'])('on %s: each tensor\'s values (on the GPU, held on the CPU, int32, empty) land at its place', async (backendName) => {
    const { flat, expected, buffersBefore, buffersAfter, heldOnGpu } = await read(backendName);
    if (backendName === 'webgpu') expect(heldOnGpu).toEqual([true, false, false, true, false]);
    expect(expected[0]).not.toBe(0);
    expect(Array.from(flat)).toEqual(Array.from(expected));
    // The staging buffer goes back to the pool.
    expect(buffersAfter).toBe(buffersBefore);
  });

  it('names a tensor whose target has the wrong length', async () => {
    await tf.setBackend('webgpu');
    const t = tf.ones([2, 3]);
    await expect(readInto([{ tensor: t, out: new Float32Array(5) }])).rejects.toThrow('readInto: a tensor of 6 values into 5');
    t.dispose();
  });
});

describe('uploads through queue.writeBuffer (upload.ts)', () => {
  it.each([
    ['float32', 'float32', (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3)],
    ['int32', 'int32', (n: number) => Int32Array.from({ length: n }, (_, i) => (i * 7919) % 100_003 - 50_000)],
    ['bool', 'bool', (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31) % 3 === 0 ? 1 : 0)],
    // A parameter tensor is a view into the flat parameter vector.
    ['float32 view at an offset into a larger array', 'float32', (n: number) => Float32Array.from({ length: n + 37 }, (_, i) => i * 0.25 - 100).subarray(29, 29 + n)],
  ] as const)('%s: the values arrive whole, written into the tensor\'s own buffer', async (_label, dtype, make) => {
    await tf.setBackend('webgpu');
    const backend = webgpuInternals(tf.backend() as unknown as WebGPUBackend);
    const queue = backend.device.queue;
    const written: unknown[] = [];
    const writeBuffer = queue.writeBuffer;
    queue.writeBuffer = function (this: GPUQueue, buffer: GPUBuffer, ...rest: unknown[]) {
      written.push(buffer);
      return (writeBuffer as (...a: unknown[]) => undefined).call(this, buffer, ...rest);
    } as typeof queue.writeBuffer;
    const n = 3001; // past WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD: the kernel runs on the GPU
    const values = make(n);
    const x = tf.tensor1d(values, dtype);
    let out: tf.Tensor;
    try {
      // A GPU kernel reads x: it is uploaded first.
      out = dtype === 'bool' ? tf.logicalNot(tf.logicalNot(x)) : tf.add(x, tf.zerosLike(x));
    } finally {
      queue.writeBuffer = writeBuffer;
    }
    expect(written).toContain(backend.tensorMap.get(x.dataId)?.resource);
    expect(Array.from(await out.data())).toEqual(Array.from(values));
    tf.dispose([x, out]);
  });
});
