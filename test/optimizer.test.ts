/**
 * The coordinator's arithmetic: Adam with warm-up, global-norm clipping and EMA (optimizer.ts),
 * the reduction of unit results in unit order (reduce.ts), and the batch plan (batchPlan.ts).
 *
 * Expected optimizer values are computed here from the published formulas with plain float64
 * JavaScript numbers, one scalar at a time, never by calling the code under test:
 *   Adam (Kingma & Ba 2015, Algorithm 1): m_t = b1 m + (1 - b1) g, v_t = b2 v + (1 - b2) g^2,
 *     mHat = m_t / (1 - b1^t), vHat = v_t / (1 - b2^t), p_t = p - lr_t mHat / (sqrt(vHat) + eps)
 *   warm-up: lr_t = lr * min(1, (step + 1) / warmup), step = updates applied before this one
 *   clipping: g <- g * gradClip / ||g||_2 when ||g||_2 > gradClip (norm over all elements)
 *   EMA (TensorFlow ExponentialMovingAverage with num_updates): d = min(decay, (1 + n) / (10 + n)),
 *     ema <- d ema + (1 - d) p_t
 *   after warm-up: lr_t = lr * (1 - progress) (linear) or lr * (1 + cos(pi progress)) / 2 (cosine),
 *     progress = (step - warmup) / (steps - warmup)
 * AdamW is checked against PyTorch's own numbers (test/reference/adamw_torch.py).
 * The implementation stores state in Float32Array, so comparisons allow float32 rounding.
 */
import { LrSchedule, NORM_BLOCK, OptimizerConfig, OptimizerState, applyUpdate, emaDecay, globalNorm, initialOptimizerState, learningRate } from '../src/training/optimizer';
import { OrderedReducer } from '../src/training/reduce';
import { BatchPlanner, PlanConfig, UnitPlan } from '../src/training/batchPlan';
import { LOSS_BUCKETS, UnitResult } from '../src/training/workUnit';

/** |actual - expected| <= rel * max(|expected|, floor): float32 storage rounds at ~6e-8 relative. */
function expectClose(actual: number, expected: number, rel = 2e-6, floor = 1e-12): void {
  const tol = rel * Math.max(Math.abs(expected), floor);
  if (!(Math.abs(actual - expected) <= tol)) {
    throw new Error(`expected ${expected}, got ${actual} (|diff| ${Math.abs(actual - expected)} > ${tol})`);
  }
}

function expectAllClose(actual: ArrayLike<number>, expected: readonly number[], rel?: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expectClose(actual[i], expected[i], rel);
}

const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Adam without warm-up, decay or weight decay; tests override what they exercise. */
const BASE_CONFIG: OptimizerConfig = {
  lr: 1e-3, warmupSteps: 0, lrSchedule: 'constant', steps: 100, adamBeta1: 0.9, adamBeta2: 0.999, adamEps: 1e-8, adamWeightDecay: 0, gradClip: 1, emaDecay: 0.999,
};

describe('applyUpdate: Adam with warm-up, clipping and EMA, against hand-computed values', () => {
  const cfg: OptimizerConfig = {
    lr: 0.1, warmupSteps: 2, lrSchedule: 'constant', steps: 3, adamBeta1: 0.9, adamBeta2: 0.999, adamEps: 1e-8, adamWeightDecay: 0, gradClip: 1.0, emaDecay: 0.9999,
  };
  const p0 = [0.5, -0.25, 2.0];
  // Step 0: norm 0.5 (no clip). Step 1: norm 5 > 1, clipped by 1/5 to [0.6, 0.8, 0]. Step 2: norm 0.3 (no clip).
  const grads = [[0.3, -0.4, 0.0], [3.0, 4.0, 0.0], [0.1, 0.2, -0.2]];

  /** Three updates of the three elements, written out with plain numbers. */
  function handComputed(): { params: number[]; ema: number[]; m: number[]; v: number[] }[] {
    const { adamBeta1: b1, adamBeta2: b2, adamEps: eps } = cfg;
    const p = [...p0];
    const ema = [...p0];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    const out = [];
    for (let step = 0; step < 3; step++) {
      const g = grads[step];
      const norm = Math.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
      const scale = norm > cfg.gradClip ? cfg.gradClip / norm : 1;
      const lr = cfg.lr * Math.min(1, (step + 1) / cfg.warmupSteps);
      const t = step + 1;
      const d = Math.min(cfg.emaDecay, (1 + step) / (10 + step));
      for (let i = 0; i < 3; i++) {
        const gi = g[i] * scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const mHat = m[i] / (1 - b1 ** t);
        const vHat = v[i] / (1 - b2 ** t);
        p[i] = p[i] - (lr * mHat) / (Math.sqrt(vHat) + eps);
        ema[i] = d * ema[i] + (1 - d) * p[i];
      }
      out.push({ params: [...p], ema: [...ema], m: [...m], v: [...v] });
    }
    return out;
  }

  function run(): { state: OptimizerState; stats: { gradNorm: number; learningRate: number }[]; snapshots: OptimizerState[] } {
    const state = initialOptimizerState(Float32Array.from(p0));
    const stats = [];
    const snapshots: OptimizerState[] = [];
    for (const g of grads) {
      stats.push(applyUpdate(cfg, state, Float32Array.from(g)));
      snapshots.push({ params: state.params.slice(), ema: state.ema.slice(), adamM: state.adamM.slice(), adamV: state.adamV.slice(), step: state.step });
    }
    return { state, stats, snapshots };
  }

  it('matches Adam with bias correction, warm-up, clipping and EMA over three steps', () => {
    const expected = handComputed();
    const { snapshots } = run();
    for (let k = 0; k < 3; k++) {
      expectAllClose(snapshots[k].params, expected[k].params);
      expectAllClose(snapshots[k].ema, expected[k].ema);
      expectAllClose(snapshots[k].adamM, expected[k].m);
      expectAllClose(snapshots[k].adamV, expected[k].v);
      expect(snapshots[k].step).toBe(k + 1);
    }
  });

  it('moves each parameter by lr_0 * sign(g) on the first step (mHat / sqrt(vHat) = sign(g)) and leaves g = 0 alone', () => {
    const { snapshots } = run();
    // lr_0 = 0.1 * min(1, 1/2) = 0.05.
    expectAllClose(snapshots[0].params, [0.5 - 0.05, -0.25 + 0.05, 2.0]);
    // EMA decay at n = 0 is min(0.9999, 1/10) = 0.1.
    expectAllClose(snapshots[0].ema, [0.1 * 0.5 + 0.9 * 0.45, 0.1 * -0.25 + 0.9 * -0.2, 2.0]);
    // m_1 = 0.1 g, v_1 = 0.001 g^2.
    expectAllClose(snapshots[0].adamM, [0.03, -0.04, 0]);
    expectAllClose(snapshots[0].adamV, [0.001 * 0.09, 0.001 * 0.16, 0]);
  });

  it('clips the step-1 gradient [3, 4, 0] (norm 5) to [0.6, 0.8, 0] before the moments see it', () => {
    const { snapshots } = run();
    // m_2 = 0.9 * 0.03 + 0.1 * 0.6, v_2 = 0.999 * 0.00009 + 0.001 * 0.36.
    expectAllClose(snapshots[1].adamM, [0.9 * 0.03 + 0.1 * 0.6, 0.9 * -0.04 + 0.1 * 0.8, 0]);
    expectAllClose(snapshots[1].adamV, [0.999 * 0.00009 + 0.001 * 0.36, 0.999 * 0.00016 + 0.001 * 0.64, 0]);
  });

  it('reports the pre-clip gradient norm and the warmed-up learning rate of each step', () => {
    const { stats } = run();
    expectAllClose(stats.map((s) => s.gradNorm), [0.5, 5, 0.3]);
    expect(stats.map((s) => s.learningRate)).toEqual([0.05, 0.1, 0.1]);
  });

  it('learningRate ramps linearly to lr over warmupSteps and is lr without warm-up (constant schedule)', () => {
    const c = { ...cfg, lr: 1e-3, warmupSteps: 4 };
    expect([0, 1, 2, 3, 4, 100].map((s) => learningRate(c, s))).toEqual([1e-3 * 0.25, 1e-3 * 0.5, 1e-3 * 0.75, 1e-3, 1e-3, 1e-3]);
    expect(learningRate({ ...c, warmupSteps: 0 }, 0)).toBe(1e-3);
  });

  it('emaDecay is (1 + n) / (10 + n) until it reaches the configured decay', () => {
    const c = { ...cfg, emaDecay: 0.9 };
    expect(emaDecay(c, 0)).toBe(0.1);
    expect(emaDecay(c, 1)).toBe(2 / 11);
    expect(emaDecay(c, 80)).toBe(81 / 90); // = 0.9 exactly
    expect(emaDecay(c, 1000)).toBe(0.9);
  });
});

describe('learning-rate schedules after warm-up', () => {
  const at = (lrSchedule: LrSchedule, steps: number[], warmupSteps = 2) =>
    steps.map((s) => learningRate({ ...BASE_CONFIG, lr: 1e-3, warmupSteps, lrSchedule, steps: 10 }, s));

  it('cosine: 1e-3 (1 + cos(pi (step - 2) / 8)) / 2 from the end of warm-up to 0 at step 10', () => {
    // cos(pi/4) = 0.7071067811865476, cos(3 pi/4) = -0.7071067811865475, cos(pi/8) = 0.9238795325112867.
    const expected = [0.5e-3, 1e-3, 1e-3, 0.5e-3 * 1.9238795325112867, 0.5e-3 * 1.7071067811865476, 0.5e-3, 0.5e-3 * (1 - 0.7071067811865475), 0];
    at('cosine', [0, 1, 2, 3, 4, 6, 8, 10]).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 18));
  });

  it('linear: 1e-3 (10 - step) / 8 after warm-up', () => {
    const expected = [0.5e-3, 1e-3, 1e-3, 0.875e-3, 0.75e-3, 0.5e-3, 0.125e-3, 0];
    at('linear', [0, 1, 2, 3, 4, 6, 9, 10]).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 18));
  });

  it('starts decaying at step 0 without warm-up, stays at 0 past the end, and is constant when asked', () => {
    expect(at('linear', [0, 5, 10, 12], 0)).toEqual([1e-3, 0.5e-3, 0, 0]);
    expect(at('cosine', [0, 10, 11], 0)).toEqual([1e-3, 0, 0]);
    expect(at('constant', [0, 1, 2, 9, 10, 100])).toEqual([0.5e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]);
  });
});

describe('AdamW (decoupled weight decay) under warm-up and cosine decay, against PyTorch', () => {
  // test/reference/adamw_torch.py: torch.optim.AdamW(lr 0.01, betas (0.9, 0.999), eps 1e-8,
  // weight_decay 0.1) under a LambdaLR with the same warm-up and cosine, six steps (torch 1.13, float32).
  const torchParams = [
    [0.4947499930858612, -0.2448749989271164, 1.9989999532699585, -1.504249930381775],
    [0.4870742857456207, -0.2462574541568756, 2.0044422149658203, -1.51274573802948],
    [0.47930264472961426, -0.2491176277399063, 2.010767936706543, -1.5189629793167114],
    [0.4786102771759033, -0.2517853081226349, 2.014138698577881, -1.5248359441757202],
    [0.47710588574409485, -0.2526717782020569, 2.0148367881774902, -1.5235995054244995],
    [0.476639062166214, -0.2529453635215759, 2.015068769454956, -1.5236878395080566],
  ];
  const grads = [[0.3, -0.4, 0.0, 0.1], [0.02, 0.5, -0.3, 0.1], [0.1, 0.2, -0.2, 0.0],
    [-0.3, 0.1, 0.05, 0.2], [0.2, -0.1, 0.1, -0.4], [0.05, 0.05, -0.05, 0.3]];
  const cfg: OptimizerConfig = { ...BASE_CONFIG, lr: 0.01, warmupSteps: 2, lrSchedule: 'cosine', steps: 6, adamWeightDecay: 0.1 };

  const train = (c: OptimizerConfig) => {
    const state = initialOptimizerState(Float32Array.from([0.5, -0.25, 2.0, -1.5]));
    return grads.map((g) => {
      applyUpdate(c, state, Float32Array.from(g));
      return [...state.params];
    });
  };

  it('gives PyTorch\'s parameters after every step (float32 rounding apart)', () => {
    train(cfg).forEach((params, k) => expectAllClose(params, torchParams[k], 1e-6));
  });

  it('is not plain Adam: without the decay the parameters differ from PyTorch\'s by far more than rounding', () => {
    const plain = train({ ...cfg, adamWeightDecay: 0 });
    // The decay shrinks 2.0 by lr_t * 0.1 * p per step: 1e-3 at the first (half-rate) step.
    expect(torchParams[0][2]).toBeCloseTo(2.0 * (1 - 0.005 * 0.1), 6);
    expect(plain[0][2]).toBe(2.0);
    expect(Math.abs(plain[5][3] - torchParams[5][3])).toBeGreaterThan(1e-3);
  });
});

describe('globalNorm', () => {
  it('is the Euclidean norm over all elements', () => {
    expect(globalNorm(Float32Array.from([3, 4]))).toBe(5);
    expect(globalNorm(Float32Array.from([1, -2, 2, -4]))).toBe(5);
    expect(globalNorm(new Float32Array(0))).toBe(0);
  });

  it('sums squares per block of NORM_BLOCK elements, then over the blocks in order', () => {
    const n = 2 * NORM_BLOCK + 1234;
    const g = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 3));
    let total = 0;
    for (let lo = 0; lo < n; lo += NORM_BLOCK) {
      let sq = 0;
      for (let i = lo; i < Math.min(n, lo + NORM_BLOCK); i++) sq += g[i] * g[i];
      total += sq;
    }
    expect(globalNorm(g)).toBe(Math.sqrt(total));
  });

  it('does not overflow where squares exceed float32 range, and does not lose small terms', () => {
    // 1e20^2 = 1e40 is beyond float32's 3.4e38: the sum of squares must be float64.
    expectClose(globalNorm(Float32Array.from([1e20, 1e20])), Math.SQRT2 * Math.fround(1e20), 1e-15);
    // One million terms of 1e-3: a float32 accumulator would drift by percents.
    const small = new Float32Array(1_000_000).fill(1e-3);
    expectClose(globalNorm(small), Math.sqrt(1e6 * Math.fround(1e-3) ** 2), 1e-9);
  });
});

describe('OrderedReducer', () => {
  const paramCount = 257;
  const unitCount = 5;

  /** Gradients spanning 16 orders of magnitude, so float addition order changes the rounding. */
  function unitResult(unitId: number, count = 3): UnitResult {
    const gradSum = new Float32Array(paramCount);
    let x = (unitId + 1) * 2654435761;
    for (let i = 0; i < paramCount; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      gradSum[i] = ((x / 2 ** 32) - 0.5) * 10 ** ((x % 17) - 8);
    }
    const lossByBucket = new Float64Array(LOSS_BUCKETS);
    const countByBucket = new Float64Array(LOSS_BUCKETS);
    lossByBucket[unitId % LOSS_BUCKETS] = 0.1 * (unitId + 1) + 1e-9 * unitId;
    countByBucket[unitId % LOSS_BUCKETS] = count;
    return { step: 0, unitId, paramVersion: 0, count, lossSum: lossByBucket[unitId % LOSS_BUCKETS], lossByBucket, countByBucket, gradSum, computeSeconds: 0 };
  }

  function permutations(n: number): number[][] {
    if (n === 0) return [[]];
    return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
  }

  function reduceInOrder(order: number[]) {
    const r = new OrderedReducer(unitCount, paramCount);
    for (const u of order) expect(r.add(unitResult(u))).toBe(true);
    return r.finish();
  }

  it('gives bit-identical sums for every arrival order (all 120 orders of 5 units)', () => {
    const reference = reduceInOrder([0, 1, 2, 3, 4]);
    for (const order of permutations(unitCount)) {
      const reduced = reduceInOrder(order);
      expect(Buffer.compare(bytes(reduced.meanGrad), bytes(reference.meanGrad))).toBe(0);
      expect(Object.is(reduced.meanLoss, reference.meanLoss)).toBe(true);
      expect(Buffer.compare(bytes(reduced.lossByBucket), bytes(reference.lossByBucket))).toBe(0);
      expect(Buffer.compare(bytes(reduced.countByBucket), bytes(reference.countByBucket))).toBe(0);
      expect(reduced.examples).toBe(15);
    }
  });

  it('is a meaningful test: naive float64 summation in another order does round differently', () => {
    const units = [0, 1, 2, 3, 4].map((u) => unitResult(u).gradSum);
    const sum = (order: number[]) => {
      const s = new Float64Array(paramCount);
      for (const u of order) for (let i = 0; i < paramCount; i++) s[i] += units[u][i];
      return s;
    };
    expect(Buffer.compare(bytes(sum([0, 1, 2, 3, 4])), bytes(sum([4, 3, 2, 1, 0])))).not.toBe(0);
  });

  it('divides the unit-order sum by the number of examples', () => {
    const reduced = reduceInOrder([2, 0, 4, 1, 3]);
    const units = [0, 1, 2, 3, 4].map((u) => unitResult(u));
    for (const i of [0, 17, 256]) {
      let s = 0;
      for (const u of units) s += u.gradSum[i];
      expect(reduced.meanGrad[i]).toBe(Math.fround(s / 15));
    }
    expect(reduced.meanLoss).toBe(units.reduce((a, u) => a + u.lossSum, 0) / 15);
  });

  it('returns false for a duplicate, whether the original is pending or already summed, and counts it once', () => {
    const r = new OrderedReducer(unitCount, paramCount);
    expect(r.add(unitResult(2))).toBe(true); // pending: 0 and 1 not in yet
    expect(r.add(unitResult(2))).toBe(false);
    expect(r.add(unitResult(0))).toBe(true); // summed at once
    expect(r.add(unitResult(0))).toBe(false);
    for (const u of [1, 3, 4]) expect(r.add(unitResult(u))).toBe(true);
    expect(r.add(unitResult(4))).toBe(false);
    const reduced = r.finish();
    expect(reduced.examples).toBe(15);
    expect(Buffer.compare(bytes(reduced.meanGrad), bytes(reduceInOrder([0, 1, 2, 3, 4]).meanGrad))).toBe(0);
  });

  it('reports the mean gradient\'s globalNorm bit for bit, for one unit and for five in any order', () => {
    for (const order of [[0], [3, 1, 4, 0, 2]]) {
      const r = new OrderedReducer(order.length, paramCount);
      for (const u of order) r.add(unitResult(u));
      const reduced = r.finish();
      expect(Object.is(reduced.gradNorm, globalNorm(reduced.meanGrad))).toBe(true);
    }
  });

  it('with one unit, the mean is float32(g / examples), and -0 becomes +0 as in a sum from zero', () => {
    const u = unitResult(0);
    u.gradSum[5] = -0;
    const r = new OrderedReducer(1, paramCount);
    r.add(u);
    const { meanGrad } = r.finish();
    expect(Object.is(meanGrad[5], 0)).toBe(true);
    for (const i of [0, 17, 256]) expect(meanGrad[i]).toBe(Math.fround(u.gradSum[i] / 3));
  });

  it('after reset (no zeroing), a step abandoned half-way leaves nothing behind: the next step equals a fresh reducer\'s', () => {
    const r = new OrderedReducer(unitCount, paramCount);
    r.add(unitResult(0));
    r.add(unitResult(1));
    r.reset(unitCount);
    for (const u of [4, 2, 3, 1, 0]) r.add(unitResult(u));
    const reference = reduceInOrder([0, 1, 2, 3, 4]);
    const reduced = r.finish();
    expect(Buffer.compare(bytes(reduced.meanGrad), bytes(reference.meanGrad))).toBe(0);
    expect(Object.is(reduced.gradNorm, reference.gradNorm)).toBe(true);
  });

  it('throws from finish() until every unit is in, including when a gap remains', () => {
    const r = new OrderedReducer(unitCount, paramCount);
    expect(() => r.finish()).toThrow(/incomplete: 0 of 5/);
    for (const u of [0, 1, 3, 4]) r.add(unitResult(u));
    expect(r.complete).toBe(false);
    expect(() => r.finish()).toThrow(/incomplete: 2 of 5/);
    r.add(unitResult(2));
    expect(r.complete).toBe(true);
    expect(() => r.finish()).not.toThrow();
  });
});

describe('BatchPlanner', () => {
  const cfg: PlanConfig = { seed: 7, datasetSize: 40, batchSize: 8, unitSize: 3, timesteps: 1000, flip: true };
  const allIndices = (units: UnitPlan[]) => units.flatMap((u) => Array.from(u.indices));

  it('gives the same plan for (seed, step) across instances and repeated calls, in any call order', () => {
    const a = new BatchPlanner(cfg);
    const b = new BatchPlanner(cfg);
    const first = [0, 1, 6, 13].map((s) => a.plan(s));
    // b visits the steps in another order (other epochs first) and a repeats them.
    const fromB = [13, 6, 1, 0].map((s) => b.plan(s)).reverse();
    const again = [0, 1, 6, 13].map((s) => a.plan(s));
    expect(fromB).toEqual(first);
    expect(again).toEqual(first);
  });

  it('gives different examples, timesteps and noise seeds to different steps and seeds', () => {
    const p = new BatchPlanner(cfg);
    expect(allIndices(p.plan(0))).not.toEqual(allIndices(p.plan(1)));
    const t = (units: UnitPlan[]) => units.flatMap((u) => Array.from(u.timesteps));
    const seeds = (units: UnitPlan[]) => units.flatMap((u) => Array.from(u.noiseSeeds));
    expect(t(p.plan(0))).not.toEqual(t(p.plan(1)));
    expect(seeds(p.plan(0))).not.toEqual(seeds(p.plan(1)));
    expect(allIndices(new BatchPlanner({ ...cfg, seed: 8 }).plan(0))).not.toEqual(allIndices(p.plan(0)));
  });

  it('visits each example exactly once per epoch (datasetSize / batchSize steps), in a new order each epoch', () => {
    const p = new BatchPlanner(cfg);
    const epoch = (e: number) => [0, 1, 2, 3, 4].flatMap((s) => allIndices(p.plan(e * 5 + s)));
    const identity = Array.from({ length: 40 }, (_, i) => i);
    expect([...epoch(0)].sort((x, y) => x - y)).toEqual(identity);
    expect([...epoch(1)].sort((x, y) => x - y)).toEqual(identity);
    expect(epoch(1)).not.toEqual(epoch(0));
    expect(epoch(0)).not.toEqual(identity); // shuffled, not sequential
  });

  it('continues across epoch boundaries that fall inside a batch', () => {
    // 10 examples, batches of 4: steps 0-4 read 20 positions = exactly two epochs.
    const p = new BatchPlanner({ ...cfg, datasetSize: 10, batchSize: 4, unitSize: 4 });
    const seq = [0, 1, 2, 3, 4].flatMap((s) => allIndices(p.plan(s)));
    const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
    const identity = Array.from({ length: 10 }, (_, i) => i);
    expect(sorted(seq.slice(0, 10))).toEqual(identity);
    expect(sorted(seq.slice(10, 20))).toEqual(identity);
  });

  it('cuts the batch into units of unitSize, the last one smaller when the batch does not divide', () => {
    const p = new BatchPlanner(cfg);
    const units = p.plan(3);
    expect(p.unitCount()).toBe(3);
    expect(units.map((u) => u.unitId)).toEqual([0, 1, 2]);
    expect(units.map((u) => u.indices.length)).toEqual([3, 3, 2]);
    for (const u of units) {
      expect([u.timesteps.length, u.noiseSeeds.length, u.flips.length]).toEqual([u.indices.length, u.indices.length, u.indices.length]);
    }
    const even = new BatchPlanner({ ...cfg, unitSize: 4 });
    expect(even.plan(3).map((u) => u.indices.length)).toEqual([4, 4]);
    // The cut does not change which examples form the batch.
    expect(allIndices(even.plan(3))).toEqual(allIndices(units));
  });

  it('draws timesteps in [0, T) and flip bits only when flipping is on', () => {
    const plans = [0, 1, 2, 3].flatMap((s) => new BatchPlanner(cfg).plan(s));
    const ts = plans.flatMap((u) => Array.from(u.timesteps));
    expect(Math.min(...ts)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...ts)).toBeLessThan(1000);
    const flips = plans.flatMap((u) => Array.from(u.flips));
    expect(new Set(flips)).toEqual(new Set([0, 1]));
    const noFlip = [0, 1, 2, 3].flatMap((s) => new BatchPlanner({ ...cfg, flip: false }).plan(s));
    expect(noFlip.every((u) => u.flips.every((f) => f === 0))).toBe(true);
  });

  it('rejects an empty dataset', () => {
    expect(() => new BatchPlanner({ ...cfg, datasetSize: 0 })).toThrow(/empty/);
  });

  describe('with labels (a class-conditional run)', () => {
    const of = Uint8Array.from({ length: 40 }, (_, i) => i % 5);
    const labelled = { ...cfg, labels: { of, classes: 5, dropProbability: 0.2 } };
    const examples = (c: PlanConfig, steps: number) => Array.from({ length: steps }, (_, s) => new BatchPlanner(c).plan(s)).flat()
      .flatMap((u) => Array.from(u.indices, (index, i) => ({ index, label: u.labels![i] })));

    it('gives each example its dataset label, or "no class" (the class count) about as often as asked', () => {
      const all = examples(labelled, 200);
      const dropped = all.filter((e) => e.label === 5).length / all.length;
      // 1,600 draws: the binomial standard deviation is 0.01.
      expect(dropped).toBeGreaterThan(0.17);
      expect(dropped).toBeLessThan(0.23);
      expect(all.filter((e) => e.label !== 5).every((e) => e.label === of[e.index])).toBe(true);
    });

    it('drops the same examples whatever the unit size, none at probability 0, and plans no labels without them', () => {
      expect(examples({ ...labelled, unitSize: 8 }, 20)).toEqual(examples(labelled, 20));
      expect(examples({ ...labelled, labels: { of, classes: 5, dropProbability: 0 } }, 20).every((e) => e.label === of[e.index])).toBe(true);
      expect(new BatchPlanner(cfg).plan(0).every((u) => u.labels === undefined)).toBe(true);
    });
  });
});

describe('the update on threads (UpdateThreads)', () => {
  it('also writes the new parameters into the next PARAMETERS frame: the bytes encodeFloats gives, in each transport dtype', async () => {
    const { initialOptimizerState } = await import('../src/training/optimizer');
    const { OrderedReducer } = await import('../src/training/reduce');
    const { UpdateThreads, shareOptimizerState } = await import('../src/training/updateThreads');
    const { DType, encodeFloats } = await import('../src/protocol/dtypes');
    const n = 70_001;
    const cfg = { ...BASE_CONFIG, lr: 1e-2, adamWeightDecay: 0.01 };
    const g = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7) * 10 ** ((i % 9) - 6));
    for (const lanes of [2, 3]) {
      const state = shareOptimizerState(initialOptimizerState(Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 3e4))); // past float16's range too
      const reducer = new OrderedReducer(1, n, true);
      const threads = new UpdateThreads(lanes, state, reducer.mean);
      try {
        for (const dtype of [DType.FLOAT32, DType.BFLOAT16, DType.FLOAT16]) {
          reducer.reset(1);
          reducer.add({ step: 0, unitId: 0, paramVersion: 0, count: 2, lossSum: 1, lossByBucket: new Float64Array(10), countByBucket: new Float64Array(10), gradSum: g, computeSeconds: 0 });
          const { meanGrad, gradNorm } = reducer.finish();
          const frame = { dtype, bytes: new Uint8Array(new SharedArrayBuffer(n * (dtype === DType.FLOAT32 ? 4 : 2))) };
          threads.applyUpdate(cfg, state, meanGrad, gradNorm, frame);
          expect([lanes, DType[dtype], Buffer.compare(Buffer.from(frame.bytes), encodeFloats(state.params, dtype))]).toEqual([lanes, DType[dtype], 0]);
        }
      } finally {
        await threads.close();
      }
    }
  }, 60_000);


  it('gives the one-thread mean, parameters, EMA and Adam moments bit for bit, for any number of threads', async () => {
    const { applyUpdate, initialOptimizerState } = await import('../src/training/optimizer');
    const { OrderedReducer } = await import('../src/training/reduce');
    const { UpdateThreads, shareOptimizerState } = await import('../src/training/updateThreads');
    const n = 100_003; // not a multiple of the slice alignment
    const cfg = { ...BASE_CONFIG, lr: 1e-3, warmupSteps: 1, lrSchedule: 'cosine' as const, steps: 4, adamWeightDecay: 0.1 };
    const grads = Array.from({ length: 4 }, (_, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s) * (s === 1 ? 50 : 0.01)));
    const init = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11));
    const run = async (lanes: number) => {
      const state = initialOptimizerState(init.slice());
      const reducer = new OrderedReducer(1, n, lanes > 1);
      const threads = lanes > 1 ? new UpdateThreads(lanes, shareOptimizerState(state), reducer.mean) : undefined;
      const norms: number[] = [];
      for (const [s, g] of grads.entries()) {
        reducer.reset(1);
        // A sum over 3 examples, so the mean pass divides.
        reducer.add({ step: s, unitId: 0, paramVersion: s, count: 3, lossSum: 1, lossByBucket: new Float64Array(10), countByBucket: new Float64Array(10), gradSum: g, computeSeconds: 0 });
        const { meanGrad, gradNorm } = reducer.finish();
        norms.push((threads ? threads.applyUpdate(cfg, state, meanGrad, gradNorm) : applyUpdate(cfg, state, meanGrad)).gradNorm);
      }
      await threads?.close();
      return { state, norms, mean: reducer.mean.slice() };
    };
    const one = await run(1);
    expect(one.norms[1]).toBeGreaterThan(1); // step 1 is clipped
    for (const lanes of [2, 3, 5]) {
      const many = await run(lanes);
      expect(many.norms).toEqual(one.norms);
      expect(Buffer.compare(Buffer.from(many.mean.buffer), Buffer.from(one.mean.buffer))).toBe(0);
      for (const key of ['params', 'ema', 'adamM', 'adamV'] as const) {
        expect([lanes, key, Buffer.compare(Buffer.from(many.state[key].slice().buffer), Buffer.from(one.state[key].slice().buffer))]).toEqual([lanes, key, 0]);
      }
    }
  }, 60_000);
});
