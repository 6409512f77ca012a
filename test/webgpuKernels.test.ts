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
import { backpropFilterMatMul } from '../src/backend/convGradients';
import { KernelComposer } from '../src/backend/kernelComposer';
import { planSplits } from '../src/backend/webgpu/filterGradient';
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

  it('the input gradient is tfjs\'s tiled (matmul) kernel, not its naive one', () => {
    expect(tf.env().getBool('WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE')).toBe(false);
  });
});

/** dW by backpropFilterMatMul (DDPM_WEBGPU_CONV_FILTER=matmul), called directly on webgpu. */
async function matmulFilterGradient(c: ConvCase, d: ReturnType<typeof caseData>): Promise<Float32Array> {
  const dw = tf.tidy(() => {
    const x = tf.tensor4d(d.x, d.xShape);
    const dy = tf.tensor4d(d.r, d.rShape);
    const k = new KernelComposer(tf.backend() as never, 'webgpu');
    const info = k.finish(backpropFilterMatMul(k, x, dy, { strides: [c.stride, c.stride], pad: c.pad, dataFormat: 'NHWC', filterShape: d.wShape }));
    return tf.engine().makeTensorFromTensorInfo(info);
  });
  const values = (await dw.data()) as Float32Array;
  dw.dispose();
  return values;
}

describe.each([...CASES, ...LARGE].map((c, i) => [c.name, c, i] as const))('conv2d %s', (_name, c, index) => {
  const data = caseData(c, 2000 + index);
  let cpu: { dx: Float32Array; dw: Float32Array };
  let webgpu: { dx: Float32Array; dw: Float32Array };
  let matmul: Float32Array;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    cpu = await convGrads(c, data);
    await tf.setBackend('webgpu');
    webgpu = await convGrads(c, data);
    matmul = await matmulFilterGradient(c, data);
  });

  it('the reference weight gradient is not trivially zero', () => {
    expect(Math.max(...cpu.dw.map(Math.abs))).toBeGreaterThan(0.1);
  });

  it('tiled weight gradient on webgpu equals the cpu reference to 1e-4 (relative L2 and max error)', () => {
    expect(relativeL2(webgpu.dw, cpu.dw)).toBeLessThan(1e-4);
    expect(relativeMax(webgpu.dw, cpu.dw)).toBeLessThan(1e-4);
  });

  it('matmul-form weight gradient on webgpu equals the cpu reference to 1e-4 (relative L2 and max error)', () => {
    expect(relativeL2(matmul, cpu.dw)).toBeLessThan(1e-4);
    expect(relativeMax(matmul, cpu.dw)).toBeLessThan(1e-4);
  });

  it('input gradient on webgpu (tfjs\'s tiled kernel) equals the cpu reference to 1e-4', () => {
    expect(relativeMax(webgpu.dx, cpu.dx)).toBeLessThan(1e-4);
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
