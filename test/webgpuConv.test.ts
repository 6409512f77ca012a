/**
 * The tiled forward convolution on webgpu (src/backend/webgpu/conv2d.ts, the default;
 * DDPM_WEBGPU_CONV=tfjs keeps tfjs's program) against the cpu backend's kernels, through tfjs's kernel registry: the
 * U-Net's fused conv + bias, and the stride-1 input gradient (a forward convolution) built on it.
 * Its own file: the choice is made once per process when the backend starts. Tolerance 1e-4
 * relative, as in webgpuKernels.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { countDispatches } from '../src/backend/webgpu/dispatchCount';
import { webgpuKernelChoiceFromEnv } from '../src/backend/webgpu/register';
import { initTestBackends } from './helpers/backends';
import { ConvCase, caseData, convCase } from './helpers/convCases';
import { relativeMax } from './helpers/numeric';

beforeAll(async () => {
  delete process.env.DDPM_WEBGPU_CONV;
  await initTestBackends('cpu', 'webgpu');
}, 60_000);

// Tiles cut at the edges in m (output positions) and n (output channels), k slabs of 16 channels
// within one tap, strides 1 and 2, SAME and VALID, 1x1 and 3x3; and shapes the kernel leaves to
// tfjs (3 input channels; 6 output channels).
const TILED: ConvCase[] = [
  convCase(2, 9, 9, 16, 36, 3, 1, 'same'),
  convCase(3, 8, 8, 32, 64, 3, 2, 'same'),
  convCase(1, 13, 13, 48, 20, 1, 1, 'valid'),
  convCase(2, 11, 11, 16, 68, 3, 1, 'valid'),
  convCase(1, 6, 6, 64, 80, 3, 1, 'same'),
  convCase(2, 7, 7, 32, 48, 3, 1, 'same'),
];
const FALLBACK: ConvCase[] = [convCase(2, 8, 8, 3, 16, 3, 1, 'same'), convCase(2, 6, 6, 16, 6, 3, 1, 'same')];

/** y = conv2d(x, w) + bias and L = sum(y * r)'s gradients for x, w and bias, on the current backend. */
async function fusedConv(c: ConvCase, seed: number) {
  const d = caseData(c, seed);
  const bias = Float32Array.from({ length: c.outChannels }, (_, i) => Math.sin(i + seed));
  const outs = tf.tidy(() => {
    const x = tf.tensor4d(d.x, d.xShape);
    const w = tf.tensor4d(d.w, d.wShape);
    const b = tf.tensor1d(bias);
    const r = tf.tensor4d(d.r, d.rShape);
    const conv = (xv: tf.Tensor, wv: tf.Tensor, bv: tf.Tensor) => tf.fused.conv2d({ x: xv as tf.Tensor4D, filter: wv as tf.Tensor4D, strides: c.stride, pad: c.pad, bias: bv });
    const y = conv(x, w, b);
    const grads = tf.grads((xv: tf.Tensor, wv: tf.Tensor, bv: tf.Tensor) => tf.sum(tf.mul(conv(xv, wv, bv), r)) as tf.Scalar)([x, w, b]);
    return [y, ...grads];
  });
  const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return { y: values[0], dx: values[1], dw: values[2], db: values[3] };
}

describe('DDPM_WEBGPU_CONV', () => {
  it('is tiled unless it says tfjs', () => {
    expect(webgpuKernelChoiceFromEnv({}).conv).toBe('tiled');
    expect(webgpuKernelChoiceFromEnv({ DDPM_WEBGPU_CONV: 'tfjs' }).conv).toBe('tfjs');
  });

  it('registers the tiled kernel for Conv2D and FusedConv2D by default', () => {
    expect(tf.getKernel(tf.Conv2D, 'webgpu')?.kernelFunc.name).toBe('tiledConv2d');
    expect(tf.getKernel(tf.FusedConv2D, 'webgpu')?.kernelFunc.name).toBe('tiledConv2d');
  });
});

describe.each([...TILED, ...FALLBACK].map((c, i) => [c.name, c, i] as const))('fused conv2d + bias %s', (_name, c, index) => {
  const tiled = TILED.includes(c);
  it(`on webgpu (${tiled ? 'the tiled kernel' : 'tfjs\'s kernel'}) equals cpu: values and gradients to 1e-4, the same bits twice`, async () => {
    await tf.setBackend('cpu');
    const cpu = await fusedConv(c, 300 + index);
    await tf.setBackend('webgpu');
    const counted = await countDispatches(() => fusedConv(c, 300 + index));
    const webgpu = counted.result;
    expect(Math.max(...cpu.y.map(Math.abs))).toBeGreaterThan(0.5);
    for (const key of ['y', 'dx', 'dw', 'db'] as const) expect(relativeMax(webgpu[key], cpu[key])).toBeLessThan(1e-4);
    // The forward twice (y, and inside grads), and the stride-1 input gradient when dy's channels
    // come in slabs of 16.
    const inputGradient = c.stride === 1 && c.outChannels % 16 === 0;
    expect(counted.dispatches?.Conv2DTiledProgram ?? 0).toBe(tiled ? 2 + (inputGradient ? 1 : 0) : 0);
    const again = await fusedConv(c, 300 + index);
    for (const key of ['y', 'dx', 'dw', 'db'] as const) expect(Buffer.compare(Buffer.from(again[key].buffer), Buffer.from(webgpu[key].buffer))).toBe(0);
  });
});
