/**
 * Tensors saved for the backward pass as references to the same data (src/backend/savedTensors.ts)
 * against tfjs's Identity clones: the same gradient bits on every backend, far fewer kernel calls,
 * nothing leaked, and second derivatives unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { referenceSavedTensors, setReferenceSavedTensors } from '../src/backend/savedTensors';
import { presetConfig } from '../src/model/config';
import { UNetModel } from '../src/model/unetModel';
import { WorkUnit } from '../src/training/workUnit';
import { gradientComputer } from '../src/worker/unitComputer';
import { initTestBackends } from './helpers/backends';

beforeAll(() => initTestBackends('cpu', 'wasm', 'webgpu'), 60_000);
afterEach(() => setReferenceSavedTensors(true));

const config = presetConfig('tiny');
const per = config.imageSize * config.imageSize * config.imageChannels;
const unit: WorkUnit = {
  step: 0, unitId: 0, count: 2, pixels: Uint8Array.from({ length: 2 * per }, (_, i) => (i * 2654435761) >>> 24),
  timesteps: Int32Array.from([17, 613]), noiseSeeds: Uint32Array.from([5, 9]), flips: Uint8Array.from([0, 1]), dropoutSeed: 3,
};

/** One unit's gradient, and the Identity kernel calls and tensors left over that computing it made. */
async function unitGradient(backend: string, reference: boolean): Promise<{ grad: Buffer; identityCalls: number; leaked: number }> {
  await tf.setBackend(backend);
  setReferenceSavedTensors(reference);
  const model = new UNetModel(config);
  const flat = model.initialParams(1, { noZeroInit: true });
  const computer = gradientComputer({ backend, model: config, schedule: 'linear', timesteps: 1000, prediction: 'eps', snrGamma: 0 });
  computer.setParams(flat, 0);
  const engine = tf.engine() as unknown as { runKernel(name: string, ...rest: unknown[]): unknown };
  const runKernel = engine.runKernel;
  let identityCalls = 0;
  engine.runKernel = function (this: unknown, name: string, ...rest: unknown[]) {
    if (name === tf.Identity) identityCalls += 1;
    return runKernel.call(this, name, ...rest);
  };
  const before = tf.memory().numTensors;
  let grad: Buffer;
  try {
    grad = Buffer.from((await computer.compute(unit)).gradSum.buffer as ArrayBuffer);
  } finally {
    engine.runKernel = runKernel;
  }
  const leaked = tf.memory().numTensors - before;
  computer.dispose();
  return { grad, identityCalls, leaked };
}

it('is on once a backend is initialised', () => {
  expect(referenceSavedTensors()).toBe(true);
});

describe.each(['cpu', 'wasm', 'webgpu'])('on %s, a U-Net unit\'s gradient', (backend) => {
  it('has the same bits with saved tensors as references as with tfjs\'s clones, from far fewer kernel calls, leaking nothing', async () => {
    const tfjs = await unitGradient(backend, false);
    const mine = await unitGradient(backend, true);
    expect(mine.grad.length).toBe(4 * new UNetModel(config).size);
    expect(mine.grad.equals(tfjs.grad)).toBe(true);
    expect(tfjs.identityCalls).toBeGreaterThan(300);
    expect(mine.identityCalls).toBe(0);
    expect(mine.leaked).toBe(0);
    expect(tfjs.leaked).toBe(0);
  }, 120_000);
});

it('leaves second derivatives alone (nested tapes keep tfjs\'s clones)', async () => {
  await tf.setBackend('cpu');
  const x = tf.tensor1d([0.5, -1.25, 2]);
  // f(x) = sum(x^3 + sin(x) x): f'' = 6x + 2 cos(x) - x sin(x).
  const f = (v: tf.Tensor) => tf.sum(tf.add(tf.mul(v, tf.mul(v, v)), tf.mul(tf.sin(v), v))) as tf.Scalar;
  const second = (reference: boolean) => {
    setReferenceSavedTensors(reference);
    return tf.tidy(() => Array.from(tf.grad((v: tf.Tensor) => tf.sum(tf.grad(f)(v)) as tf.Scalar)(x).dataSync()));
  };
  const expected = [0.5, -1.25, 2].map((v) => 6 * v + 2 * Math.cos(v) - v * Math.sin(v));
  const mine = second(true);
  mine.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
  expect(mine).toEqual(second(false));
  x.dispose();
});
