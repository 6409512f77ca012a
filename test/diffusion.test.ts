/**
 * The forward process, the training objective and the samplers (src/diffusion), checked against
 * closed forms: the moments of q(x_t | x_0), a loss computed by hand in float64, and the exact
 * reverse process of a data distribution that is a single point, whose ideal noise predictor is
 * known: eps*(x_t, t) = (x_t - sqrt(abar_t) x0*) / sqrt(1 - abar_t).
 *
 * Reference numbers marked "numpy" were printed by:
 *   b = np.linspace(1e-4, 0.02, 1000); ac = np.cumprod(1 - b); print(ac[9], ac[10], ac[199], ac[200])
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/backend';
import { minSnrWeights, perExampleLoss, qSample, qStep } from '../src/diffusion/forward';
import { sample } from '../src/diffusion/samplers';
import { Denoiser, PREDICTION_TARGETS, PredictionTarget } from '../src/diffusion/types';
import { presetConfig } from '../src/model/config';
import { UNetModel } from '../src/model/unetModel';
import { Rng } from '../src/rng/rng';
import { DiffusionSchedule, ddimTimesteps, logSnrTimesteps, makeSchedule } from '../src/schedule';
import { generateImages } from '../src/training/generate';

type Shape4 = [number, number, number, number];

// numpy, linear schedule, T = 1000 (0-based t: abar_t = prod_{s <= t} (1 - beta_s)).
const ALPHA_BAR = { 9: 0.9981052047858344, 10: 0.997806572507846, 199: 0.6590385082317941, 200: 0.6563470055193468 } as const;

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const filled = (n: number, t: number) => new Int32Array(n).fill(t);

// Jest runs test code in a vm context where every lookup of a global such as Math costs about
// 0.3 us, which makes src/rng's generator ~15x slower here than in node. The 3.2M normals of the
// statistical test below come from this local one instead: mulberry32 uniforms, Box-Muller,
// with Math's functions looked up once.
const { imul, log, sqrt, cos, sin, PI } = Math;
function bulkGaussian(shape: Shape4, seed: number): tf.Tensor4D {
  const n = size(shape);
  const out = new Float32Array(n);
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = imul(state ^ (state >>> 15), state | 1);
    z ^= z + imul(z ^ (z >>> 7), z | 61);
    return (((z ^ (z >>> 14)) >>> 0) + 0.5) / 4294967296; // in (0, 1)
  };
  for (let i = 0; i < n; i += 2) {
    const r = sqrt(-2 * log(uniform()));
    const theta = 2 * PI * uniform();
    out[i] = r * cos(theta);
    if (i + 1 < n) out[i + 1] = r * sin(theta);
  }
  return tf.tensor4d(out, shape);
}

/** Per-pixel mean and the variance pooled over pixels, of samples laid out [N, 1, 1, P]. */
function moments(values: Float32Array, n: number, p: number): { mean: number[]; pooledVariance: number } {
  const mean = new Array<number>(p).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) mean[j] += values[i * p + j] / n;
  let sq = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) sq += (values[i * p + j] - mean[j]) ** 2;
  return { mean, pooledVariance: sq / (p * (n - 1)) };
}

/** The ideal predictor of `target` when the data is the single point x0star: x0* itself, its
 * noise eps* = (x_t - sqrt(abar_t) x0*) / sqrt(1 - abar_t), or v* = sqrt(abar_t) eps* - sqrt(1 - abar_t) x0*. */
function pointDenoiser(schedule: DiffusionSchedule, x0star: tf.Tensor4D, target: PredictionTarget, record?: { t: number; x: Float32Array }[]): Denoiser {
  return (xt, timesteps) => {
    record?.push({ t: timesteps[0], x: xt.dataSync() as Float32Array });
    return tf.tidy(() => {
      const n = timesteps.length;
      const per = (f: (t: number) => number) => tf.tensor4d(Array.from(timesteps, f), [n, 1, 1, 1]);
      const alpha = per((t) => schedule.sqrtAlphasCumprod[t]);
      const sigma = per((t) => schedule.sqrtOneMinusAlphasCumprod[t]);
      const eps = tf.div(tf.sub(xt, tf.mul(alpha, x0star)), sigma);
      if (target === 'eps') return eps as tf.Tensor4D;
      if (target === 'v') return tf.sub(tf.mul(alpha, eps), tf.mul(sigma, x0star)) as tf.Tensor4D;
      return tf.add(tf.zerosLike(xt), x0star) as tf.Tensor4D;
    });
  };
}

/** A fixed data point in [-1, 1], including both ends: 2 examples of 4x4x1. */
const X0_STAR_VALUES = Float32Array.from([-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 1, 0.9, -0.9, 0.1, -0.1, 0.33, -0.66, 0.66, -0.33,
  0.2, 0.4, 0.6, 0.8, -0.2, -0.4, -0.6, -0.8, 1, -1, 0.05, -0.05, 0.7, -0.7, 0.15, -0.15]);
const X0_SHAPE: Shape4 = [2, 4, 4, 1];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// wasm: the cpu backend's broadcasting kernels are JavaScript loops, slow under jest (see above).
beforeAll(async () => {
  await initBackend('wasm');
});

describe('qSample: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, against t + 1 steps of qStep', () => {
  // 4000 samples of one fixed set of 4 pixel values. Tolerances are 4 standard errors:
  // mean: sqrt((1 - abar) / N); variance pooled over P pixels: (1 - abar) sqrt(2 / (P (N - 1))).
  const N = 4000;
  const PIXELS = [-0.9, -0.3, 0.4, 1.0];
  const P = PIXELS.length;
  const schedule = makeSchedule('linear', 1000);
  const x0Values = new Float32Array(N * P);
  for (let i = 0; i < N; i++) x0Values.set(PIXELS, i * P);
  const shape: Shape4 = [N, 1, 1, P];

  const chains = new Map<number, Float32Array>();
  function chain(t: number): Float32Array {
    const cached = chains.get(t);
    if (cached !== undefined) return cached;
    const result = tf.tidy(() => {
      let x = tf.tensor4d(x0Values, shape);
      // 0-based timesteps: x_t is reached from x_0 by the steps s = 0, 1, ..., t.
      for (let s = 0; s <= t; s++) x = qStep(schedule, x, filled(N, s), bulkGaussian(shape, 100 + s));
      return x.dataSync() as Float32Array;
    });
    chains.set(t, result);
    return result;
  }

  function closedForm(t: number): Float32Array {
    return tf.tidy(() => qSample(schedule, tf.tensor4d(x0Values, shape), filled(N, t), bulkGaussian(shape, 7)).dataSync() as Float32Array);
  }

  describe.each([10, 200] as const)('at t = %i', (t) => {
    const abar = ALPHA_BAR[t];
    const meanSE = Math.sqrt((1 - abar) / N);
    const varSE = (1 - abar) * Math.sqrt(2 / (P * (N - 1)));
    let iterated: ReturnType<typeof moments>;
    let direct: ReturnType<typeof moments>;

    beforeAll(() => {
      iterated = moments(chain(t), N, P);
      direct = moments(closedForm(t), N, P);
    });

    it('the iterated chain has mean sqrt(abar_t) x_0 within 4 standard errors, pixel by pixel', () => {
      PIXELS.forEach((x0, j) => expect(Math.abs(iterated.mean[j] - Math.sqrt(abar) * x0)).toBeLessThan(4 * meanSE));
    });

    it('the iterated chain has variance 1 - abar_t within 4 standard errors', () => {
      expect(Math.abs(iterated.pooledVariance - (1 - abar))).toBeLessThan(4 * varSE);
    });

    it('qSample has mean sqrt(abar_t) x_0 within 4 standard errors, pixel by pixel', () => {
      PIXELS.forEach((x0, j) => expect(Math.abs(direct.mean[j] - Math.sqrt(abar) * x0)).toBeLessThan(4 * meanSE));
    });

    it('qSample has variance 1 - abar_t within 4 standard errors', () => {
      expect(Math.abs(direct.pooledVariance - (1 - abar))).toBeLessThan(4 * varSE);
    });
  });

  it('has the power to see one step: at t = 10 the chain\'s variance is more than 4 standard errors from 1 - abar_9', () => {
    const v = moments(chain(10), N, P).pooledVariance;
    expect(Math.abs(v - (1 - ALPHA_BAR[9]))).toBeGreaterThan(4 * (1 - ALPHA_BAR[10]) * Math.sqrt(2 / (P * (N - 1))));
  });

  it('with given noise, is exactly sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps per example (float32)', () => {
    const x0 = [0.5, -1, 0.25];
    const eps = [1.5, -0.5, 2];
    const t = [0, 10, 200];
    const out = tf.tidy(() => qSample(schedule, tf.tensor4d(x0, [3, 1, 1, 1]), Int32Array.from(t), tf.tensor4d(eps, [3, 1, 1, 1])).dataSync());
    const abar = [1 - 1e-4, ALPHA_BAR[10], ALPHA_BAR[200]];
    t.forEach((_, i) => expect(out[i]).toBeCloseTo(Math.sqrt(abar[i]) * x0[i] + Math.sqrt(1 - abar[i]) * eps[i], 6));
  });
});

describe.each(PREDICTION_TARGETS)('perExampleLoss, prediction %s (mean over pixels of (target - f(x_t, t))^2; Eq. 14 for eps)', (target) => {
  const schedule = makeSchedule('linear', 1000);
  const shape: Shape4 = [3, 2, 2, 1];
  const x0 = Float32Array.from([-1, -0.5, 0.5, 1, 0.2, 0.4, -0.6, 0.8, 0, 0.1, -0.1, 0.3]);
  const eps = Float32Array.from([0.3, -1.2, 0.7, 2.1, -0.4, 0.9, -1.5, 0.05, 1.1, -0.8, 0.6, -0.2]);
  const timesteps = Int32Array.from([0, 500, 999]);
  // A fake denoiser: f(x, t) = 0.5 x + t / 1000.
  const fake: Denoiser = (xt, t) => tf.tidy(() => tf.add(tf.mul(xt, 0.5), tf.tensor4d(Array.from(t, (v) => v / 1000), [t.length, 1, 1, 1])) as tf.Tensor4D);

  /** The target in float64: eps; x0; or v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022). */
  function targetByHand(): number[] {
    return Array.from(x0, (x, i) => {
      const a = schedule.alphasCumprod[timesteps[Math.floor(i / 4)]];
      return target === 'eps' ? eps[i] : target === 'x0' ? x : Math.sqrt(a) * eps[i] - Math.sqrt(1 - a) * x;
    });
  }

  function lossByHand(): number[] {
    const y = targetByHand();
    return Array.from(timesteps, (t, n) => {
      const a = schedule.alphasCumprod[t];
      let sum = 0;
      for (let p = 0; p < 4; p++) {
        const xt = Math.sqrt(a) * x0[n * 4 + p] + Math.sqrt(1 - a) * eps[n * 4 + p];
        sum += (y[n * 4 + p] - (0.5 * xt + t / 1000)) ** 2;
      }
      return sum / 4;
    });
  }

  it('returns one loss per example, each the float64 value computed by hand to 1e-5 relative', () => {
    const losses = tf.tidy(() => perExampleLoss(schedule, fake, tf.tensor4d(x0, shape), timesteps, tf.tensor4d(eps, shape), { prediction: target, snrGamma: 0 }).dataSync());
    const expected = lossByHand();
    expect(losses.length).toBe(3);
    expected.forEach((v, i) => expect(Math.abs(losses[i] - v)).toBeLessThan(1e-5 * v));
  });

  it('passes the model x_t from the closed form and the timesteps unchanged', () => {
    const seen: { x: Float32Array; t: Int32Array }[] = [];
    const spy: Denoiser = (xt, t) => {
      seen.push({ x: xt.dataSync() as Float32Array, t: Int32Array.from(t) });
      return fake(xt, t);
    };
    tf.tidy(() => perExampleLoss(schedule, spy, tf.tensor4d(x0, shape), timesteps, tf.tensor4d(eps, shape), { prediction: target, snrGamma: 0 }));
    expect(seen.length).toBe(1);
    expect(Array.from(seen[0].t)).toEqual([0, 500, 999]);
    const a = Array.from(timesteps, (t) => schedule.alphasCumprod[t]);
    seen[0].x.forEach((v, i) => expect(v).toBeCloseTo(Math.sqrt(a[Math.floor(i / 4)]) * x0[i] + Math.sqrt(1 - a[Math.floor(i / 4)]) * eps[i], 6));
  });

  it('is zero (to float32 rounding) for a model that returns the true target', () => {
    const oracle: Denoiser = () => tf.tensor4d(targetByHand(), shape);
    const losses = tf.tidy(() => perExampleLoss(schedule, oracle, tf.tensor4d(x0, shape), timesteps, tf.tensor4d(eps, shape), { prediction: target, snrGamma: 0 }).dataSync());
    losses.forEach((v) => expect(v).toBeLessThan(1e-12));
  });
});

describe('Min-SNR-gamma loss weights (Hang et al. 2023), gamma = 5, linear schedule', () => {
  const schedule = makeSchedule('linear', 1000);
  const timesteps = Int32Array.from([0, 10, 200, 999]);
  // abar from numpy (ALPHA_BAR above; abar_0 = 1 - 1e-4), snr = abar / (1 - abar).
  const snr = [0.9999 / 1e-4, ALPHA_BAR[10] / (1 - ALPHA_BAR[10]), ALPHA_BAR[200] / (1 - ALPHA_BAR[200])];

  it('eps: min(snr, 5) / snr: 5 / 9999 at t = 0, 1 where snr < 5 (t = 200, 999)', () => {
    const w = minSnrWeights(schedule, 'eps', 5, timesteps);
    expect(w[0]).toBeCloseTo(5 / 9999, 12);
    expect(w[1]).toBeCloseTo(5 / snr[1], 12);
    expect(w[2]).toBe(1);
    expect(w[3]).toBe(1);
  });

  it('v: min(snr, 5) / (snr + 1): 5e-4 at t = 0, abar_t itself where snr < 5', () => {
    const w = minSnrWeights(schedule, 'v', 5, timesteps);
    expect(w[0]).toBeCloseTo(5e-4, 12);
    expect(w[1]).toBeCloseTo(5 / (snr[1] + 1), 12);
    expect(w[2]).toBeCloseTo(ALPHA_BAR[200], 12);
    expect(w[3]).toBeCloseTo(schedule.alphasCumprod[999], 15);
  });

  it('x0: min(snr, 5)', () => {
    const w = minSnrWeights(schedule, 'x0', 5, timesteps);
    expect(Array.from(w.slice(0, 3))).toEqual([5, 5, expect.closeTo(snr[2], 10)]);
  });

  it.each(PREDICTION_TARGETS)('perExampleLoss with snrGamma 5 is the unweighted loss times the weights (%s); snrGamma 0 is the unweighted loss', (prediction) => {
    const shape: Shape4 = [4, 2, 2, 1];
    const x0 = tf.tensor4d(Float32Array.from({ length: 16 }, (_, i) => Math.sin(i) * 0.9), shape);
    const eps = tf.tensor4d(Float32Array.from({ length: 16 }, (_, i) => Math.cos(i * 1.7)), shape);
    const fake: Denoiser = (xt) => tf.mul(xt, 0.3) as tf.Tensor4D;
    const loss = (snrGamma: number) => tf.tidy(() => perExampleLoss(schedule, fake, x0, timesteps, eps, { prediction, snrGamma }).dataSync() as Float32Array);
    const plain = loss(0);
    const weighted = loss(5);
    const w = minSnrWeights(schedule, prediction, 5, timesteps);
    plain.forEach((v, i) => expect(Math.abs(weighted[i] - v * w[i])).toBeLessThanOrEqual(1e-6 * Math.abs(v * w[i])));
    // The weights matter here: at t = 0 every target's weight is far from 1.
    expect(Math.abs(weighted[0] - plain[0])).toBeGreaterThan(0.5 * Math.abs(plain[0]));
    tf.dispose([x0, eps]);
  });
});

describe('samplers with the ideal denoiser of a single data point x0*', () => {
  /** Records every noise draw; the first is x_T. */
  function recordingNoise(seed: number) {
    const draws: Float32Array[] = [];
    const noise = (shape: Shape4) => {
      const values = new Rng(seed + draws.length).gaussianFloat32(size(shape));
      draws.push(values);
      return tf.tensor4d(values, shape);
    };
    return { draws, noise };
  }

  // DDIM (eta 0) over its uniform 50 steps; DPM-Solver++ over 20 evenly spaced in log-SNR. The
  // extrapolated prediction of a constant x0* is x0* again, so DPM-Solver++ too lands on the path
  // exactly (Lu et al. 2022, Eq. 9 with D = x0*).
  const ODE_SAMPLERS = [
    { sampler: 'ddim', steps: 50, first: [980, 960], timesteps: () => ddimTimesteps(1000, 50) },
    { sampler: 'dpm-solver++', steps: 20, first: [999, 947], timesteps: () => logSnrTimesteps(makeSchedule('linear', 1000).alphasCumprod, 20) },
  ] as const;
  describe.each(ODE_SAMPLERS.flatMap((s) => PREDICTION_TARGETS.map((target) => [s.sampler, s.steps, target, s] as const)))('%s, %i steps of T = 1000, prediction %s', (sampler, steps, target, s) => {
    const schedule = makeSchedule('linear', 1000);
    const visits: { t: number; x: Float32Array }[] = [];
    let result: Float32Array;
    let draws: Float32Array[];

    beforeAll(() => {
      const x0star = tf.tensor4d(X0_STAR_VALUES, X0_SHAPE);
      const rec = recordingNoise(11);
      draws = rec.draws;
      const out = sample(schedule, pointDenoiser(schedule, x0star, target, visits), X0_SHAPE, { sampler, prediction: target, steps, eta: 0, noise: rec.noise });
      result = out.dataSync() as Float32Array;
      tf.dispose([out, x0star]);
    });

    it('returns x0* to 1e-4', () => {
      expect(maxAbsDiff(result, X0_STAR_VALUES)).toBeLessThan(1e-4);
    });

    it(`visits t = ${s.first.join(', ')}, ..., 0 and draws noise once (x_T only)`, () => {
      expect(visits.map((v) => v.t)).toEqual(s.timesteps());
      expect(visits.map((v) => v.t).slice(0, 2)).toEqual(s.first);
      expect(draws.length).toBe(1);
    });

    it('keeps x_t on the closed-form path sqrt(abar_t) x0* + sqrt(1 - abar_t) eps0 at every step (Eq. 12), to 1e-4', () => {
      // eps0 is fixed by the first input; with eta = 0 and the ideal denoiser it never changes.
      const a0 = schedule.alphasCumprod[visits[0].t];
      const eps0 = Array.from(visits[0].x, (x, i) => (x - Math.sqrt(a0) * X0_STAR_VALUES[i]) / Math.sqrt(1 - a0));
      let worst = 0;
      for (const { t, x } of visits) {
        const a = schedule.alphasCumprod[t];
        worst = Math.max(worst, maxAbsDiff(x, eps0.map((e, i) => Math.sqrt(a) * X0_STAR_VALUES[i] + Math.sqrt(1 - a) * e)));
      }
      expect(worst).toBeLessThan(1e-4);
    });
  });

  describe.each(PREDICTION_TARGETS.flatMap((target) => (['fixed-small', 'fixed-large'] as const).map((variance) => [variance, target] as const)))('DDPM ancestral, %s variance, T = 100, prediction %s', (variance, target) => {
    const T = 100;
    const schedule = makeSchedule('linear', T);
    const visits: { t: number; x: Float32Array }[] = [];
    let result: Float32Array;
    let draws: Float32Array[];

    beforeAll(() => {
      const x0star = tf.tensor4d(X0_STAR_VALUES, X0_SHAPE);
      const rec = recordingNoise(23);
      draws = rec.draws;
      const out = sample(schedule, pointDenoiser(schedule, x0star, target, visits), X0_SHAPE, { sampler: 'ddpm', prediction: target, variance, noise: rec.noise });
      result = out.dataSync() as Float32Array;
      tf.dispose([out, x0star]);
    });

    it('returns x0* to 1e-4', () => {
      expect(maxAbsDiff(result, X0_STAR_VALUES)).toBeLessThan(1e-4);
    });

    it('visits t = T-1 down to 0 and draws noise for x_T and for every step but t = 0', () => {
      expect(visits.map((v) => v.t)).toEqual(Array.from({ length: T }, (_, i) => T - 1 - i));
      expect(draws.length).toBe(T);
    });

    it(`steps x_{t-1} = mu~_t(x_t, x0*) + sigma_t z with sigma_t^2 = ${variance === 'fixed-small' ? 'beta~_t' : 'beta_t'} (Eq. 7, Sec. 3.2), to 1e-4`, () => {
      let worst = 0;
      for (let i = 0; i + 1 < visits.length; i++) {
        const t = visits[i].t;
        const sigma = Math.sqrt(variance === 'fixed-small' ? schedule.posteriorVariance[t] : schedule.betas[t]);
        const z = draws[i + 1];
        const expected = visits[i].x.map((x, j) => schedule.posteriorMeanCoef1[t] * X0_STAR_VALUES[j] + schedule.posteriorMeanCoef2[t] * x + sigma * z[j]);
        worst = Math.max(worst, maxAbsDiff(visits[i + 1].x, expected));
      }
      expect(worst).toBeLessThan(1e-4);
    });
  });
});

describe('DDIM and DPM-Solver++ against the exact probability-flow ODE of Gaussian data', () => {
  // Data x0 ~ N(mu, s^2) per pixel: x_t ~ N(alpha mu, alpha^2 s^2 + sigma^2), the ideal denoiser is
  // E[x0 | x_t] = mu + alpha s^2 (x_t - alpha mu) / (alpha^2 s^2 + sigma^2), and the ODE keeps each
  // pixel's standard score z = (x_t - alpha mu) / sqrt(alpha^2 s^2 + sigma^2) fixed. So the exact x at
  // the last visited timestep (t = 0) is known from x_T; the error there is the solver's alone (the
  // final step to t = -1 adds the same last denoising to both). Values of z up to 2 keep x0 inside
  // [-1, 1], where the samplers' clipping does nothing.
  const schedule = makeSchedule('linear', 1000);
  const mu = 0.2;
  const s = 0.4;
  const shape: Shape4 = [1, 3, 3, 1];
  const zValues = Float32Array.from({ length: 9 }, (_, i) => -2 + 0.5 * i);
  const alpha = (t: number) => schedule.sqrtAlphasCumprod[t];
  const sigma = (t: number) => schedule.sqrtOneMinusAlphasCumprod[t];
  const spread = (t: number) => Math.sqrt(alpha(t) ** 2 * s * s + sigma(t) ** 2);

  /** Largest |x - exact| at t = 0 over the pixels, starting from x = alpha mu + spread z at the first timestep. */
  function errorAtZero(sampler: 'ddim' | 'dpm-solver++', steps: number): number {
    const visits: { t: number; x: Float32Array }[] = [];
    const eps: Denoiser = (xt, timesteps) => {
      const t = timesteps[0];
      visits.push({ t, x: xt.dataSync() as Float32Array });
      return tf.tidy(() => {
        const x0 = tf.add(tf.mul(tf.sub(xt, alpha(t) * mu), (alpha(t) * s * s) / spread(t) ** 2), mu);
        return tf.div(tf.sub(xt, tf.mul(x0, alpha(t))), sigma(t)) as tf.Tensor4D;
      });
    };
    const first = sampler === 'ddim' ? ddimTimesteps(1000, steps)[0] : 999;
    const xT = zValues.map((z) => alpha(first) * mu + spread(first) * z);
    tf.dispose(sample(schedule, eps, shape, { sampler, prediction: 'eps', steps, noise: (sh) => tf.tensor4d(xT, sh) }));
    const last = visits[visits.length - 1];
    expect(last.t).toBe(0);
    return maxAbsDiff(last.x, Array.from(zValues, (z) => alpha(0) * mu + spread(0) * z));
  }

  it('DPM-Solver++ is second order: each doubling of steps (20 -> 40 -> 80) cuts its error over 3x; DDIM\'s, first order, about 2x', () => {
    const dpm = [20, 40, 80].map((m) => errorAtZero('dpm-solver++', m));
    const ddim = [20, 40, 80].map((m) => errorAtZero('ddim', m));
    // numpy (float64): DPM-Solver++ 1.19e-2, 3.05e-3, 7.4e-4; DDIM 1.25e-1, 6.5e-2, 3.2e-2.
    expect(dpm[0] / dpm[1]).toBeGreaterThan(3);
    expect(dpm[1] / dpm[2]).toBeGreaterThan(3);
    for (const ratio of [ddim[0] / ddim[1], ddim[1] / ddim[2]]) {
      expect(ratio).toBeGreaterThan(1.7);
      expect(ratio).toBeLessThan(2.3);
    }
  });

  it('DPM-Solver++ with 20 steps is over 3x closer to the exact solution than DDIM with 50', () => {
    const dpm20 = errorAtZero('dpm-solver++', 20);
    const ddim50 = errorAtZero('ddim', 50);
    expect(dpm20).toBeGreaterThan(1e-3); // not exact: the comparison means something
    expect(ddim50 / dpm20).toBeGreaterThan(3);
  });
});

describe('DDIM sampling with a fixed initial noise', () => {
  const schedule = makeSchedule('linear', 100);
  const shape: Shape4 = [2, 3, 3, 1];
  // Any smooth, non-trivial denoiser will do: the claim is about the sampler.
  const denoiser: Denoiser = (xt, t) => tf.tidy(() => tf.add(tf.mul(tf.tanh(xt), 0.7), tf.tensor4d(Array.from(t, (v) => v / 200), [t.length, 1, 1, 1])) as tf.Tensor4D);

  /** x_T from seed 1; every later draw from laterSeed. */
  function run(eta: number, laterSeed: number): { out: Float32Array; draws: number } {
    let draws = 0;
    const noise = (s: Shape4) => {
      const seed = draws++ === 0 ? 1 : laterSeed * 1000 + draws;
      return tf.tensor4d(new Rng(seed).gaussianFloat32(size(s)), s);
    };
    const images = sample(schedule, denoiser, shape, { sampler: 'ddim', prediction: 'eps', steps: 10, eta, noise });
    const out = images.dataSync() as Float32Array;
    images.dispose();
    return { out, draws };
  }

  it('with eta = 0 gives bit-identical images whatever any later draw would be', () => {
    const a = run(0, 2);
    const b = run(0, 3);
    expect(a.draws).toBe(1);
    expect(b.out).toEqual(a.out);
  });

  it('with eta = 1 draws noise at every step but the last, so later draws change the images', () => {
    const a = run(1, 2);
    const b = run(1, 3);
    expect(a.draws).toBe(10);
    expect(maxAbsDiff(a.out, b.out)).toBeGreaterThan(1e-3);
  });

  it('leaves no tensor behind but the one it returns', () => {
    const before = tf.memory().numTensors;
    const images = sample(schedule, denoiser, shape, { sampler: 'ddim', prediction: 'eps', steps: 10, eta: 0, noise: (s) => tf.tensor4d(new Rng(1).gaussianFloat32(size(s)), s) });
    images.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects eta outside [0, 1], naming it', () => {
    expect(() => sample(schedule, denoiser, shape, { sampler: 'ddim', prediction: 'eps', eta: 1.5, noise: (s) => tf.zeros(s) })).toThrow('eta must be in [0, 1], got 1.5');
  });
});

describe('generateImages', () => {
  const model = new UNetModel(presetConfig('tiny'));
  const params = model.initialParams(5, { noZeroInit: true });
  const schedule = makeSchedule('linear', 100);
  // eta = 1 so that every step draws noise, not only x_T.
  const generate = (seed: number) => generateImages(model, params, schedule, { n: 2, seed, sampler: 'ddim', prediction: 'eps', steps: 3, eta: 1 });

  it('gives bit-identical images for the same seed', async () => {
    expect(await generate(42)).toEqual(await generate(42));
  });

  it('gives different images for a different seed', async () => {
    expect(maxAbsDiff(await generate(42), await generate(43))).toBeGreaterThan(1e-2);
  });

  it('returns n images of H*W*C values in [-1, 1] and frees its tensors', async () => {
    const before = tf.memory().numTensors;
    const images = await generate(7);
    expect(tf.memory().numTensors).toBe(before);
    expect(images.length).toBe(2 * 8 * 8 * 1);
    expect(images.every((v) => v >= -1 && v <= 1)).toBe(true);
  });
});
