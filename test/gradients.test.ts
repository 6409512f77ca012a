/**
 * The worker's gradients (src/training/unitGradients.ts) for the tiny U-Net: against central
 * finite differences of the summed loss, across the cpu, wasm and webgpu backends, and in use (a
 * few hundred Adam steps overfit 8 images). webgpu runs here through Dawn's OpenGL ES backend on
 * Mesa's llvmpipe: tfjs's real webgpu backend and this project's WGSL kernels, on the CPU.
 *
 * The backends are initialised once in this process; `tf.setBackend` switches between them.
 * Every parameter starts non-zero (noZeroInit) so that every path through the network carries
 * gradient; with the reference init, conv_out = 0 blocks all of them. The model is class-conditional,
 * the unconditional one plus the class embedding's path.
 */
import * as tf from '@tensorflow/tfjs-core';
import { perExampleLoss } from '../src/diffusion/forward';
import type { Objective } from '../src/diffusion/types';
import { presetConfig } from '../src/model/config';
import { upsampleNearest } from '../src/model/layers';
import { paramSize } from '../src/model/paramSpecs';
import { UNetModel } from '../src/model/unetModel';
import { Rng } from '../src/rng/rng';
import { initTestBackends } from './helpers/backends';
import { makeSchedule } from '../src/schedule';
import { OptimizerConfig, applyUpdate, initialOptimizerState } from '../src/training/optimizer';
import { UnitGradientComputer, unitImages, unitNoise } from '../src/training/unitGradients';
import { UnitResult, WorkUnit } from '../src/training/workUnit';

type Backend = 'cpu' | 'wasm' | 'webgpu';

/** Class-conditional (3 classes), so the class embedding's gradient is checked with the rest. */
const model = new UNetModel({ ...presetConfig('tiny'), classes: 3 });
const schedule = makeSchedule('linear', 1000);
/** The DDPM paper's objective: eps, unweighted. */
const EPS: Objective = { prediction: 'eps', snrGamma: 0 };
const IMAGE = 8 * 8 * 1;

function initialParams(noZeroInit: boolean): Float32Array {
  return model.initialParams(1, { noZeroInit });
}

/** A unit of `count` random 8x8 images with spread-out timesteps, every other one flipped. */
function makeUnit(count: number, seed: number, timesteps?: number[]): WorkUnit {
  const rng = new Rng(seed);
  const pixels = new Uint8Array(count * IMAGE);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rng.nextInt(256);
  return {
    step: 0,
    unitId: 0,
    count,
    pixels,
    timesteps: Int32Array.from(timesteps ?? Array.from({ length: count }, (_, i) => [30, 500, 900][i % 3])),
    noiseSeeds: Uint32Array.from({ length: count }, (_, i) => seed * 100 + i),
    flips: Uint8Array.from({ length: count }, (_, i) => i % 2),
    dropoutSeed: 0,
    // Classes 0, 1, 2 and "no class" (3) in turn.
    labels: Uint8Array.from({ length: count }, (_, i) => (i * 3 + seed) % 4),
  };
}

/** The unit's summed loss at `flat`, by the forward pass alone (no gradient code involved). */
async function summedLoss(unit: WorkUnit, flat: Float32Array): Promise<number> {
  const shape: [number, number, number, number] = [unit.count, 8, 8, 1];
  const total = tf.tidy(() => {
    const params = model.tensorsFromFlat(flat);
    const x0 = tf.tensor4d(unitImages(unit, 8, 1), shape);
    const noise = tf.tensor4d(unitNoise(unit, IMAGE), shape);
    return tf.sum(perExampleLoss(schedule, (xt, t) => model.forward(params, xt, t, { labels: unit.labels }), x0, unit.timesteps, noise, EPS));
  });
  const value = (await total.data())[0];
  total.dispose();
  return value;
}

function unitGradient(unit: WorkUnit, flat: Float32Array): Promise<UnitResult> {
  const computer = new UnitGradientComputer(model, schedule, EPS);
  computer.setParams(flat, 0);
  try {
    return computer.compute(unit);
  } finally {
    computer.dispose();
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

beforeAll(() => initTestBackends('webgpu', 'wasm', 'cpu'), 60_000);

describe.each([
  ['cpu', 2],
  ['wasm', 2],
  ['webgpu', 2],
] as [Backend, number][])('UnitGradientComputer on %s, a unit of %i example(s), against central finite differences', (backend, count) => {
  const params = initialParams(true);
  const unit = makeUnit(count, 5);
  // One random element from each of 20 randomly chosen parameter tensors, so biases, norms,
  // attention and convolutions are all represented.
  const pick = new Rng(99);
  const chosen = Array.from(pick.permutation(model.specs.length).slice(0, 20), (k) => ({
    name: model.specs[k].name,
    index: model.offsets[k] + pick.nextInt(paramSize(model.specs[k].shape)),
  }));
  // And the class embedding's rows of both examples' labels (a class, and "no class"), element 5.
  const classEmb = model.specs.findIndex((s) => s.name === 'class_emb/embedding');
  for (const label of unit.labels ?? []) chosen.push({ name: `class_emb/embedding[${label}]`, index: model.offsets[classEmb] + label * 32 + 5 });
  const direction = new Rng(7).gaussianFloat32(model.size);
  const norm = Math.sqrt(dot(direction, direction));
  direction.forEach((v, i) => { direction[i] = v / norm; });

  let result: UnitResult;
  let lossAtParams: number;
  let fd: number[];
  let directional: number;

  beforeAll(async () => {
    await tf.setBackend(backend);
    result = await unitGradient(unit, params);
    lossAtParams = await summedLoss(unit, params);
    // Step 1e-2 per coordinate: the summed loss (~2.6) is float32, so each evaluation carries a
    // rounding error of ~1e-6; divided by 2h that is ~5e-5 absolute in a difference quotient.
    // Rounding, not truncation, dominates at this step: halving it doubles the worst error.
    const h = 1e-2;
    fd = [];
    for (const { index } of chosen) {
      const p = params.slice();
      p[index] = params[index] + h;
      const up = await summedLoss(unit, p);
      p[index] = params[index] - h;
      fd.push((up - (await summedLoss(unit, p))) / (2 * h));
    }
    // Along a unit direction every coordinate moves by ~h / sqrt(45k), so the step can be larger.
    const hd = 3e-2;
    const up = await summedLoss(unit, params.map((v, i) => v + hd * direction[i]));
    const down = await summedLoss(unit, params.map((v, i) => v - hd * direction[i]));
    directional = (up - down) / (2 * hd);
  });

  it('reports as lossSum the summed loss of the forward pass, to float32 rounding', () => {
    expect(Math.abs(result.lossSum - lossAtParams)).toBeLessThan(1e-5 * lossAtParams);
  });

  it('matches the difference quotient at 22 parameters: |fd - g| <= 2e-2 * max(|g|, 1e-2)', () => {
    // 2% relative: measured worst case 0.35% (wasm; the same on cpu with a correct
    // ResizeNearestNeighborGrad, see the upsample test below). The floor
    // 1e-2 turns that into 2e-4 absolute for small gradients, 4x the ~5e-5 rounding noise of the
    // quotient (an attention key bias, whose exact gradient is 0, lands there).
    const mismatches = chosen
      .map(({ name, index }, k) => ({ name, gradient: result.gradSum[index], fd: fd[k] }))
      .filter(({ gradient, fd: q }) => !(Math.abs(q - gradient) <= 2e-2 * Math.max(Math.abs(gradient), 1e-2)));
    expect(mismatches).toEqual([]);
  });

  it('gives the class embedding rows of its labels, and only those, a gradient (the class path is live)', () => {
    const rows = Array.from({ length: 4 }, (_, label) => {
      const start = model.offsets[classEmb] + label * 32;
      return Math.max(...Array.from(result.gradSum.subarray(start, start + 32), Math.abs));
    });
    rows.forEach((max, label) => {
      if (unit.labels!.includes(label)) expect(max).toBeGreaterThan(1e-3);
      else expect(max).toBe(0);
    });
  });

  // The directional quotient's error, measured at ~7e-6 absolute for this step (about 1e-6 of
  // loss rounding over 2 * 3e-2), 3e-4 of the derivative (~2.6e-2); the floor of 2e-5 keeps
  // the check robust should the random direction be nearly orthogonal to the gradient.
  const directionalTolerance = (predicted: number) => 3e-3 * Math.abs(predicted) + 2e-5;

  it('matches the directional derivative along a random unit direction to 3e-3 relative (+2e-5)', () => {
    // A gradient wrong by a factor (x2, x-1), or wrong in one tensor, is off by O(1).
    const predicted = dot(result.gradSum, direction);
    expect(Math.abs(directional - predicted)).toBeLessThan(directionalTolerance(predicted));
  });

  it('the directional check rejects a gradient scaled by 2 or negated', () => {
    const predicted = dot(result.gradSum, direction);
    for (const wrong of [2 * predicted, -predicted]) expect(Math.abs(directional - wrong)).toBeGreaterThan(directionalTolerance(wrong));
  });
});

describe('the nearest-neighbour upsample (upsampleNearest) differentiates per example', () => {
  // Output pixel (y, x) copies source pixel (floor(y h / H), floor(x h / H)) of the same example,
  // so d/dx sum(up(x) * r) at a source pixel is the sum of r over the outputs copied from it.
  // Computed here by hand, for the doubling 4 -> 8 and the 4 -> 7 of a 28x28 U-Net.
  const [n, h, c] = [2, 4, 3];

  it.each([
    ['cpu', 8],
    ['wasm', 8],
    ['cpu', 7],
    ['wasm', 7],
  ] as [Backend, number][])('on %s, a batch of 2 upsampled 4 -> %i gets the hand-computed gradient to 1e-5', async (backend, H) => {
    const r = new Rng(3).gaussianFloat32(n * H * H * c);
    const expected = new Float64Array(n * h * h * c);
    for (let b = 0; b < n; b++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < H; x++) {
          const src = (b * h + Math.floor((y * h) / H)) * h + Math.floor((x * h) / H);
          for (let k = 0; k < c; k++) expected[src * c + k] += r[((b * H + y) * H + x) * c + k];
        }
      }
    }
    await tf.setBackend(backend);
    const grad = tf.tidy(() => {
      const x = tf.tensor4d(new Rng(4).gaussianFloat32(n * h * h * c), [n, h, h, c]);
      const rt = tf.tensor4d(r, [n, H, H, c]);
      return tf.grad((v: tf.Tensor) => tf.sum(tf.mul(upsampleNearest(v as tf.Tensor4D, [H, H]), rt)))(x).dataSync();
    });
    let worst = 0;
    expected.forEach((v, i) => { worst = Math.max(worst, Math.abs(grad[i] - v)); });
    expect(worst).toBeLessThan(1e-5);
  });
});

describe.each([
  ['wasm', 3], ['wasm', 1], ['webgpu', 3],
] as [Backend, number][])('gradients on %s and cpu agree to 1e-4 relative, a unit of %i example(s)', (backend, count) => {
  const params = initialParams(true);
  const unit = makeUnit(count, 6);
  let cpu: UnitResult;
  let other: UnitResult;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    cpu = await unitGradient(unit, params);
    await tf.setBackend(backend);
    other = await unitGradient(unit, params);
  });

  it('in the relative L2 norm of the difference over the whole flat gradient', () => {
    const diff = cpu.gradSum.map((v, i) => v - other.gradSum[i]);
    expect(Math.sqrt(dot(diff, diff) / dot(cpu.gradSum, cpu.gradSum))).toBeLessThan(1e-4);
  });

  it('per parameter tensor, as max |difference| / max |cpu value|, wherever the tensor\'s norm is not tiny', () => {
    // "Not tiny": L2 norm above 1e-4 of the whole gradient's. This excludes only the attention
    // key biases, whose exact gradient is 0 and whose float32 values are rounding noise.
    const globalNorm = Math.sqrt(dot(cpu.gradSum, cpu.gradSum));
    const offenders: { name: string; error: number }[] = [];
    model.specs.forEach((spec, k) => {
      const a = cpu.gradSum.subarray(model.offsets[k], model.offsets[k] + paramSize(spec.shape));
      const b = other.gradSum.subarray(model.offsets[k], model.offsets[k] + paramSize(spec.shape));
      if (Math.sqrt(dot(a, a)) <= 1e-4 * globalNorm) return;
      let diff = 0;
      let scale = 0;
      a.forEach((v, i) => {
        diff = Math.max(diff, Math.abs(v - b[i]));
        scale = Math.max(scale, Math.abs(v));
      });
      if (!(diff <= 1e-4 * scale)) offenders.push({ name: spec.name, error: diff / scale });
    });
    expect(offenders).toEqual([]);
  });

  it('and their loss sums agree to 1e-6 relative', () => {
    expect(Math.abs(cpu.lossSum - other.lossSum)).toBeLessThan(1e-6 * cpu.lossSum);
  });
});

describe('training the tiny U-Net on 8 fixed images (wasm, Adam lr 1e-3)', () => {
  // The same timesteps and noise at every step, so the loss is one fixed function of the
  // parameters and must fall. Reference init (conv_out = 0): the start loss is mean(eps^2) ~ 1.
  const STEPS = 150;
  const unit = makeUnit(8, 9, [50, 150, 250, 350, 450, 550, 650, 750]);
  const config: OptimizerConfig = { lr: 1e-3, warmupSteps: 0, lrSchedule: 'constant', steps: 100, adamBeta1: 0.9, adamBeta2: 0.999, adamEps: 1e-8, adamWeightDecay: 0, gradClip: 1, emaDecay: 0.999 };
  const losses: number[] = [];

  beforeAll(async () => {
    await tf.setBackend('wasm');
    const state = initialOptimizerState(initialParams(false));
    const computer = new UnitGradientComputer(model, schedule, EPS);
    for (let step = 0; step <= STEPS; step++) {
      computer.setParams(state.params, step);
      const result = await computer.compute(unit);
      losses.push(result.lossSum / unit.count);
      const meanGrad = result.gradSum.map((g) => g / unit.count);
      applyUpdate(config, state, meanGrad);
    }
    computer.dispose();
  });

  it('starts near mean(eps^2) = 1', () => {
    expect(losses[0]).toBeGreaterThan(0.7);
    expect(losses[0]).toBeLessThan(1.3);
  });

  it(`falls below 0.3x the starting loss within ${STEPS} steps`, () => {
    expect(losses[STEPS]).toBeLessThan(0.3 * losses[0]);
  });

  it('is lower after the second half of training than after the first', () => {
    expect(losses[STEPS]).toBeLessThan(losses[STEPS / 2]);
  });
});

describe('prepare(): the next unit\'s images and noise made while this one computes (the in-process trainer)', () => {
  it('a prepared unit gives the gradient of an unprepared one; a unit other than the prepared one does not take its inputs', async () => {
    await tf.setBackend('cpu');
    const flat = initialParams(true);
    const a = makeUnit(2, 21);
    const b = makeUnit(2, 22);
    const [freshA, freshB] = await Promise.all([a, b].map(async (u) => Buffer.from((await unitGradient(u, flat)).gradSum.buffer)));
    const computer = new UnitGradientComputer(model, schedule, EPS);
    computer.setParams(flat, 0);
    try {
      computer.prepare(a);
      // b, not the prepared a: computed from b's own images and noise.
      expect(Buffer.from((await computer.compute(b)).gradSum.buffer).equals(freshB)).toBe(true);
      computer.prepare(a);
      expect(Buffer.from((await computer.compute(a)).gradSum.buffer).equals(freshA)).toBe(true);
      expect(computer.unitsFromPrepared).toBe(1);
      expect(freshA.equals(freshB)).toBe(false);
    } finally {
      computer.dispose();
    }
  });
});
