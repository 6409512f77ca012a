/**
 * Noise schedules and sampling timesteps, checked against numbers computed independently of
 * this project's code.
 *
 * Where the reference numbers come from
 * -------------------------------------
 * Every literal below marked "numpy" was printed (with repr, i.e. 17 significant digits) by the
 * following Python 3 / numpy 2.4 float64 script, which follows improved-diffusion's
 * gaussian_diffusion.py (get_named_beta_schedule, betas_for_alpha_bar, GaussianDiffusion.__init__).
 * To re-run it, copy the lines between the markers, strip the leading " * ", and run python3.
 *
 * ---8<--- reference.py
 * import math, numpy as np
 * def linear(T):
 *     s = 1000 / T
 *     return np.linspace(s * 1e-4, s * 0.02, T, dtype=np.float64)
 * def cosine(T):
 *     f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
 *     return np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
 * def derive(b):
 *     a = 1.0 - b; ac = np.cumprod(a); acp = np.append(1.0, ac[:-1])
 *     pv = b * (1.0 - acp) / (1.0 - ac)
 *     return dict(betas=b, alphasCumprod=ac, posteriorVariance=pv,
 *                 posteriorLogVarianceClipped=np.log(np.append(pv[1], pv[1:])),
 *                 posteriorMeanCoef1=b * np.sqrt(acp) / (1.0 - ac),
 *                 posteriorMeanCoef2=(1.0 - acp) * np.sqrt(a) / (1.0 - ac))
 * for name, fn in [('linear', linear), ('cosine', cosine)]:
 *     d = derive(fn(1000))
 *     for k, v in d.items():
 *         print(name, k, [repr(float(v[t])) for t in (0, 1, 2, 499, 998, 999)])
 * b = linear(100); print('linear T=100', repr(float(b[0])), repr(float(b[1])), repr(float(b[-1])))
 * print('linear T=1000 posteriorVariance[487]', repr(float(derive(linear(1000))['posteriorVariance'][487])))
 * ---8<---
 *
 * Tolerances
 * ----------
 * Relative tolerance 1e-12 everywhere, with one documented exception. The float64 operations that
 * matter (+, -, *, /, sqrt) are correctly rounded in both numpy and V8, so the only source of
 * disagreement between two faithful implementations is cos() and log(), which may differ by one ulp
 * between glibc's libm (numpy) and V8's fdlibm port (Math.cos / Math.log).
 *
 * For the cosine schedule at t in {0, 1, 2}, beta_t = 1 - alphaBar(t+1)/alphaBar(t) is about 4e-5,
 * so the subtraction amplifies a one-ulp difference in cos() by roughly 1/beta_t = 2.4e4. Measured
 * (300 trials perturbing every cos() result in the numpy script by -1, 0 or +1 ulp at random), the
 * worst relative change at t <= 2 was 1.1e-11 for betas, posteriorVariance, posteriorMeanCoef1 and
 * posteriorMeanCoef2, and 9.5e-13 for posteriorLogVarianceClipped; alphasCumprod moved by at most
 * 1.1e-15. (Against a 50-digit mpmath evaluation, numpy's own float64 cosine beta_0 is off by 4.6e-12,
 * so these digits are not better determined than that anyway.) So at cosine t <= 2 the tolerance is
 * 5e-11 for those four arrays and 5e-12 for posteriorLogVarianceClipped: about 5x the measured
 * one-ulp sensitivity. At t in {499, 998, 999} the same experiment moved nothing by more than
 * 2.2e-13, and 1e-12 is kept there, as it is for every linear-schedule value.
 */
import {
  InvalidTimestepsError,
  UnknownScheduleError,
  extract,
  makeBetas,
  makeSchedule,
  type DiffusionSchedule,
} from '../src/schedule/betaSchedule';
import { ddimTimesteps, logSnrTimesteps } from '../src/schedule/samplingTimesteps';

type Quantity =
  | 'betas'
  | 'alphasCumprod'
  | 'posteriorVariance'
  | 'posteriorLogVarianceClipped'
  | 'posteriorMeanCoef1'
  | 'posteriorMeanCoef2';

const SAMPLED_T = [0, 1, 2, 499, 998, 999] as const;

const RTOL = 1e-12;

/**
 * Compares actual[t] with expected values at the sampled timesteps and returns the entries that miss
 * their relative tolerance (an empty list means everything matched). A reference value of exactly 0
 * must be reproduced exactly.
 */
function mismatches(
  actual: Float64Array,
  expected: readonly number[],
  rtol: readonly number[],
): Array<{ t: number; actual: number; expected: number; relErr: number; rtol: number }> {
  const out: Array<{ t: number; actual: number; expected: number; relErr: number; rtol: number }> = [];
  SAMPLED_T.forEach((t, i) => {
    const a = actual[t];
    const e = expected[i];
    const relErr = e === 0 ? (a === 0 ? 0 : Infinity) : Math.abs(a - e) / Math.abs(e);
    if (!(relErr <= rtol[i])) out.push({ t, actual: a, expected: e, relErr, rtol: rtol[i] });
  });
  return out;
}

const uniform = (r: number): number[] => SAMPLED_T.map(() => r);

// numpy float64 (script above), T = 1000, at t = 0, 1, 2, 499, 998, 999.
const LINEAR_1000: Record<Quantity, number[]> = {
  betas: [0.0001, 0.00011991991991991993, 0.00013983983983983984, 0.010040040040040039, 0.01998008008008008, 0.02],
  alphasCumprod: [
    0.9999, 0.9997800920720721, 0.9996402829841216, 0.07858724288177824, 4.118193638138445e-5, 4.035829765375676e-5,
  ],
  posteriorVariance: [
    0.0, 5.4531876613021935e-5, 8.548911523090944e-5, 0.010031355414613688, 0.019980063304243196, 0.01999998352656061,
  ],
  posteriorLogVarianceClipped: [
    -9.81672513529567, -9.81672513529567, -9.36712149736664, -4.602039550085138, -3.9130203373862087,
    -3.912023829100455,
  ],
  posteriorMeanCoef1: [
    1.0000000000001101, 0.5452914995102903, 0.3887068358672305, 0.0030700711142649766, 0.00012952423622957632,
    0.00012835148717224682,
  ],
  posteriorMeanCoef2: [
    0.0, 0.4547084989905303, 0.6112931602877927, 0.9941066702101666, 0.9899587234910675, 0.9899486782675173,
  ],
};

// numpy float64 (script above), T = 1000, at t = 0, 1, 2, 499, 998, 999.
const COSINE_1000: Record<Quantity, number[]> = {
  betas: [
    4.128422482196914e-5, 4.614175273665033e-5, 5.099948119891007e-5, 0.0031458862304780677, 0.7499993929011166, 0.999,
  ],
  alphasCumprod: [
    0.999958715775178, 0.9999125759273678, 0.9998615809047513, 0.4938435904406382, 2.4287669070348544e-6,
    2.4287669070348567e-9,
  ],
  posteriorVariance: [
    0.0, 2.178949614569182e-5, 3.2210746216237576e-5, 0.003136199904057811, 0.7499939281844208, 0.9989975760881921,
  ],
  posteriorLogVarianceClipped: [
    -10.734082532465003, -10.734082532465003, -10.343210427666996, -5.764743433609203, -0.28769016823865734,
    -0.0010029266746731796,
  ],
  posteriorMeanCoef1: [
    1.0, 0.5277814093344871, 0.36842642098897643, 0.00437458822614554, 0.002337676189817342, 0.0015568917154901703,
  ],
  posteriorMeanCoef2: [
    0.0, 0.47221859042675934, 0.6315735784539775, 0.9953516194721715, 0.49999696394667836, 0.03162269987413465,
  ],
};

// Per-index tolerances for the cosine schedule (t = 0, 1, 2, 499, 998, 999); see the header comment.
const COSINE_RTOL: Record<Quantity, number[]> = {
  betas: [5e-11, 5e-11, 5e-11, RTOL, RTOL, RTOL],
  alphasCumprod: uniform(RTOL),
  posteriorVariance: [5e-11, 5e-11, 5e-11, RTOL, RTOL, RTOL],
  posteriorLogVarianceClipped: [5e-12, 5e-12, 5e-12, RTOL, RTOL, RTOL],
  posteriorMeanCoef1: [5e-11, 5e-11, 5e-11, RTOL, RTOL, RTOL],
  posteriorMeanCoef2: [5e-11, 5e-11, 5e-11, RTOL, RTOL, RTOL],
};

const QUANTITIES = Object.keys(LINEAR_1000) as Quantity[];

describe('linear schedule, T = 1000 (Ho et al. 2020), against numpy float64', () => {
  const schedule: DiffusionSchedule = makeSchedule('linear', 1000);

  it('has one entry per timestep in every array', () => {
    for (const q of QUANTITIES) expect(schedule[q]).toHaveLength(1000);
  });

  it.each(QUANTITIES)('%s matches numpy at t = 0, 1, 2, 499, 998, 999 to a relative 1e-12', (q) => {
    expect(mismatches(schedule[q], LINEAR_1000[q], uniform(RTOL))).toEqual([]);
  });

  it('starts at exactly 1e-4 and ends at exactly 0.02, as numpy.linspace does', () => {
    expect(schedule.betas[0]).toBe(0.0001);
    expect(schedule.betas[999]).toBe(0.02);
  });
});

describe('cosine schedule, T = 1000 (Nichol & Dhariwal 2021), against numpy float64', () => {
  const schedule: DiffusionSchedule = makeSchedule('cosine', 1000);

  it('has one entry per timestep in every array', () => {
    for (const q of QUANTITIES) expect(schedule[q]).toHaveLength(1000);
  });

  it.each(QUANTITIES)(
    '%s matches numpy at t = 0, 1, 2, 499, 998, 999 (1e-12 relative; looser at t <= 2, see header)',
    (q) => {
      expect(mismatches(schedule[q], COSINE_1000[q], COSINE_RTOL[q])).toEqual([]);
    },
  );

  it('clips the last beta to exactly 0.999', () => {
    expect(schedule.betas[999]).toBe(0.999);
  });

  it('clips only the last beta: every earlier beta is below 0.999', () => {
    const clipped = Array.from(schedule.betas.subarray(0, 999)).filter((b) => b >= 0.999);
    expect(clipped).toEqual([]);
  });

  it('never exceeds 0.999 anywhere', () => {
    expect(Math.max(...schedule.betas)).toBe(0.999);
  });
});

describe('linear schedule rescaled for T = 100', () => {
  const betas = makeBetas('linear', 100);

  it('has 100 betas', () => {
    expect(betas).toHaveLength(100);
  });

  // numpy float64: 1000/100 * 1e-4 == 0.001 and 1000/100 * 0.02 == 0.2 exactly in float64.
  it('starts at 10 * 1e-4 = 0.001', () => {
    expect(betas[0]).toBe(0.001);
  });

  it('ends at 10 * 0.02 = 0.2', () => {
    expect(betas[99]).toBe(0.2);
  });

  it('is evenly spaced: betas[1] matches numpy (0.00301010101010101) to a relative 1e-12', () => {
    expect(Math.abs(betas[1] - 0.00301010101010101) / 0.00301010101010101).toBeLessThanOrEqual(RTOL);
  });
});

describe('published anchor values (linear, T = 1000)', () => {
  const schedule = makeSchedule('linear', 1000);

  // sqrt(alphaBar_T) ~ 0.00635: the signal left at t = T - 1 is about 4.04e-5 in alphaBar.
  it('alphasCumprod[999] is about 4.035e-5 (within 1e-3 relative)', () => {
    expect(Math.abs(schedule.alphasCumprod[999] - 4.035e-5) / 4.035e-5).toBeLessThan(1e-3);
  });

  // diffusers tests/schedulers/test_scheduler_ddpm.py, DDPMSchedulerTest.test_variance, default
  // config (1000 steps, linear 1e-4..0.02, fixed_small): |_get_variance(t) - v| < 1e-5.
  it('posteriorVariance[0] is 0 (diffusers: _get_variance(0) = 0.0 within 1e-5)', () => {
    expect(Math.abs(schedule.posteriorVariance[0] - 0.0)).toBeLessThan(1e-5);
  });

  it('posteriorVariance[487] is 0.00979 within 1e-5 (diffusers: _get_variance(487))', () => {
    expect(Math.abs(schedule.posteriorVariance[487] - 0.00979)).toBeLessThan(1e-5);
  });

  it('posteriorVariance[999] is 0.02 within 1e-5 (diffusers: _get_variance(999))', () => {
    expect(Math.abs(schedule.posteriorVariance[999] - 0.02)).toBeLessThan(1e-5);
  });

  it('posteriorVariance[487] matches numpy (0.00979157198569004) to a relative 1e-12', () => {
    expect(Math.abs(schedule.posteriorVariance[487] - 0.00979157198569004) / 0.00979157198569004).toBeLessThanOrEqual(
      RTOL,
    );
  });
});

describe('extract', () => {
  const values = new Float64Array([0.5, 0.25, 0.125, 0.1]);

  it('gathers the value at each requested timestep, in order, as float32', () => {
    const out = extract(values, [3, 0, 2, 2]);
    expect(out).toBeInstanceOf(Float32Array);
    expect(Array.from(out)).toEqual([Math.fround(0.1), 0.5, 0.125, 0.125]);
  });

  it('returns an empty array for no timesteps', () => {
    expect(extract(values, [])).toHaveLength(0);
  });

  it('rejects a negative timestep', () => {
    expect(() => extract(values, [0, -1])).toThrow(RangeError);
  });

  it('rejects a timestep equal to the array length', () => {
    expect(() => extract(values, [4])).toThrow(RangeError);
  });

  it('rejects a non-integer timestep', () => {
    expect(() => extract(values, [1.5])).toThrow(RangeError);
  });

  it('names the bad timestep and the valid range in its error', () => {
    expect(() => extract(values, [7])).toThrow(/7.*\[0, 3\]/);
  });
});

describe('makeBetas argument checking', () => {
  it('rejects an unknown schedule name with an UnknownScheduleError', () => {
    expect(() => makeBetas('quadratic' as never, 1000)).toThrow(UnknownScheduleError);
  });

  it('names the bad value in the unknown-schedule error', () => {
    expect(() => makeBetas('quadratic' as never, 1000)).toThrow(/quadratic/);
  });

  it('lists every allowed schedule name in the unknown-schedule error', () => {
    let message = '';
    try {
      makeBetas('quadratic' as never, 1000);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('linear');
    expect(message).toContain('cosine');
  });

  it('rejects T = 0', () => {
    expect(() => makeBetas('linear', 0)).toThrow(RangeError);
  });

  it('rejects a linear schedule of T <= 20, whose last beta 0.02 x 1000/T reaches 1 (cosine clips its betas at 0.999)', () => {
    expect(makeBetas('linear', 21)[20]).toBeLessThan(1);
    expect(() => makeBetas('linear', 20)).toThrow(InvalidTimestepsError);
    expect(() => makeBetas('linear', 10)).toThrow(/linear schedule needs timesteps >= 21.*got 10/);
    expect(makeSchedule('linear', 21).alphasCumprod[20]).toBeGreaterThan(0);
    expect(makeSchedule('cosine', 10).alphasCumprod[9]).toBeGreaterThan(0);
  });
});

describe('ddimTimesteps', () => {
  it('visits 980, 960, ..., 20, 0 for T = 1000 and 50 steps', () => {
    const expected = Array.from({ length: 50 }, (_, i) => 980 - 20 * i);
    expect(expected[0]).toBe(980);
    expect(expected[49]).toBe(0);
    expect(ddimTimesteps(1000, 50)).toEqual(expected);
  });

  it('rejects 0 steps', () => {
    expect(() => ddimTimesteps(1000, 0)).toThrow(RangeError);
  });

  it('rejects more steps than training timesteps', () => {
    expect(() => ddimTimesteps(1000, 1001)).toThrow(RangeError);
  });
});

describe('logSnrTimesteps (DPM-Solver++\'s spacing, uniform in lambda = log(alpha / sigma))', () => {
  // numpy: lam = 0.5 * np.log(ac / (1 - ac)); lo, hi = max(lam[T-1], -5.1), lam[0]
  //   out = [T-1] + [argmin(|lam - (lo + (hi - lo) i / (M-1))|) for i in 1..M-1], then made distinct
  it('matches numpy for the linear schedule, T = 1000, 10 and 20 steps', () => {
    const ac = makeSchedule('linear', 1000).alphasCumprod;
    expect(logSnrTimesteps(ac, 10)).toEqual([999, 886, 757, 603, 410, 202, 73, 22, 5, 0]);
    expect(logSnrTimesteps(ac, 20)).toEqual([999, 947, 893, 834, 772, 704, 629, 546, 454, 353, 253, 166, 103, 61, 35, 19, 10, 4, 1, 0]);
  });

  it('matches numpy for the cosine schedule, T = 1000, 10 steps: lambda from -5.1, not the clipped end\'s -9.9', () => {
    const ac = makeSchedule('cosine', 1000).alphasCumprod;
    expect(0.5 * Math.log(ac[999] / (1 - ac[999]))).toBeLessThan(-9.9);
    expect(logSnrTimesteps(ac, 10)).toEqual([999, 987, 962, 885, 674, 330, 111, 31, 6, 0]);
  });

  it('gives `steps` distinct decreasing timesteps in [0, T-1], from T-1 (and to 0 for 2 or more), for every steps <= T', () => {
    for (const name of ['linear', 'cosine'] as const) {
      for (const T of name === 'linear' ? [21, 40] : [2, 5, 12, 40]) {
        const ac = makeSchedule(name, T).alphasCumprod;
        for (let steps = 1; steps <= T; steps++) {
          const ts = logSnrTimesteps(ac, steps);
          expect(ts.length).toBe(steps);
          expect(ts[0]).toBe(T - 1);
          if (steps > 1) expect(ts[steps - 1]).toBe(0);
          for (let i = 1; i < steps; i++) expect(ts[i]).toBeLessThan(ts[i - 1]);
          expect(ts[steps - 1]).toBeGreaterThanOrEqual(0);
        }
      }
    }
    expect(logSnrTimesteps(makeSchedule('linear', 40).alphasCumprod, 40)).toEqual(Array.from({ length: 40 }, (_, i) => 39 - i));
  });

  it('rejects 0 steps and more steps than training timesteps', () => {
    const ac = makeSchedule('linear', 100).alphasCumprod;
    expect(() => logSnrTimesteps(ac, 0)).toThrow(RangeError);
    expect(() => logSnrTimesteps(ac, 101)).toThrow(RangeError);
  });
});
