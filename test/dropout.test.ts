/**
 * Dropout masks from a counter-based hash of (seed, element) (src/backend/dropoutMask.ts,
 * proto/README.md "Dropout"): reference values from an independent Python implementation of the
 * text, the rate kept, and the webgpu kernel (the mask computed on the GPU, Dawn on llvmpipe)
 * against the host-built mask of the other backends, values and gradients, bit for bit.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DROPOUT, dropoutMask } from '../src/backend/dropoutMask';
import { dropout } from '../src/model/layers';
import { Rng, hashKey } from '../src/rng/rng';
import { initTestBackends } from './helpers/backends';

beforeAll(() => initTestBackends('cpu', 'webgpu'), 60_000);

describe('the mask', () => {
  it('keeps the elements the protocol text keeps (seed hashKey(1234, 3), rate 0.3; Python reference)', () => {
    const seed = hashKey(1234, 3);
    expect(seed).toBe(404731976);
    const mask = dropoutMask(seed, 40, 0.3);
    const kept = [0, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 18, 20, 21, 22, 23, 24, 25, 27, 28, 30, 31, 32, 34, 36, 39];
    expect(Array.from(mask.keys()).filter((i) => mask[i] !== 0)).toEqual(kept);
    expect(new Set(kept.map((i) => mask[i]))).toEqual(new Set([1.4285714626312256]));
  });

  it.each([0.1, 0.5, 0.9])('rate %f: drops that share of 200,000 elements to within 0.01', (rate) => {
    const mask = dropoutMask(hashKey(9, 1), 200_000, rate);
    expect(Math.abs(mask.filter((v) => v === 0).length / mask.length - rate)).toBeLessThan(0.01);
  });

  it('rate 0 keeps everything unscaled; a rate of 1 or more is one line naming it', () => {
    expect(Array.from(dropoutMask(5, 100, 0)).every((v) => v === 1)).toBe(true);
    expect(() => dropoutMask(5, 10, 1)).toThrow('dropout rate must be in [0, 1), got 1');
  });
});

describe('on webgpu (mask computed on the GPU) against the cpu backend (mask built on the host)', () => {
  const shape: [number, number, number, number] = [3, 9, 7, 40];
  const n = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(3);
  const x = Float32Array.from({ length: n }, () => rng.nextGaussian() * 3);
  const w = Float32Array.from({ length: n }, () => rng.nextGaussian());

  async function run(backend: string, rate: number, unitSeed: number): Promise<{ y: Float32Array; dx: Float32Array; usedKernel: boolean }> {
    await tf.setBackend(backend);
    const xt = tf.tensor4d(x, shape);
    const wt = tf.tensor4d(w, shape);
    const y = tf.tidy(() => dropout(xt, rate, unitSeed, 4));
    const dx = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(dropout(v as tf.Tensor4D, rate, unitSeed, 4), wt)))(xt));
    const out = { y: (await y.data()) as Float32Array, dx: (await dx.data()) as Float32Array, usedKernel: tf.getKernel(DROPOUT, backend) !== undefined };
    tf.dispose([xt, wt, y, dx]);
    return out;
  }

  it.each([[0.1, 17], [0.5, 4_000_000_000], [0.9, 3]])('rate %f, unit seed %i: the same values and gradients, bit for bit; the mask is what the host builds', async (rate, unitSeed) => {
    const cpu = await run('cpu', rate, unitSeed);
    const gpu = await run('webgpu', rate, unitSeed);
    expect(cpu.usedKernel).toBe(false);
    expect(gpu.usedKernel).toBe(true);
    expect(Buffer.from(gpu.y.buffer).equals(Buffer.from(cpu.y.buffer))).toBe(true);
    expect(Buffer.from(gpu.dx.buffer).equals(Buffer.from(cpu.dx.buffer))).toBe(true);
    const mask = dropoutMask(hashKey(unitSeed, 4), n, rate);
    expect(Array.from(cpu.y)).toEqual(Array.from(x, (v, i) => Math.fround(v * mask[i])));
    expect(Array.from(cpu.dx)).toEqual(Array.from(w, (v, i) => Math.fround(v * mask[i])));
  });

  it('a seed that is not one int32 value is one line naming it', async () => {
    await tf.setBackend('webgpu');
    const xt = tf.ones([4]);
    const seed = tf.tensor1d([1, 2], 'int32');
    expect(() => tf.engine().runKernel(DROPOUT, { x: xt, seed }, { rate: 0.5 })).toThrow('DdpmDropout: seed must be one int32 value, got int32 [2]');
    tf.dispose([xt, seed]);
  });
});
