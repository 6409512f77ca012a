/**
 * Noise schedules and every quantity derived from them, in float64 on the host.
 * Pure TypeScript: nothing here may import tfjs (see DESIGN.md, Layout).
 */

export const SCHEDULE_NAMES = ['linear', 'cosine'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

export class UnknownScheduleError extends Error {
  constructor(name: string) {
    super(`unknown beta schedule: "${name}" (allowed: ${SCHEDULE_NAMES.join(', ')})`);
    this.name = 'UnknownScheduleError';
  }
}

/** Timesteps a schedule cannot have: not a positive integer, or, for the linear schedule, so few
 * that its rescaled betas (0.02 x 1000/T at the end) reach 1 and abar_t falls to 0 or below. */
export class InvalidTimestepsError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTimestepsError';
  }
}

export const MIN_LINEAR_TIMESTEPS = 21;
/** Far beyond any schedule in use (1,000 to 4,000); the derived arrays take 80 bytes per timestep. */
export const MAX_TIMESTEPS = 100_000;

export function checkTimesteps(name: ScheduleName, timesteps: number): void {
  if (!Number.isInteger(timesteps) || timesteps < 1) {
    throw new InvalidTimestepsError(`timesteps must be a positive integer, got ${timesteps}`);
  }
  if (timesteps > MAX_TIMESTEPS) throw new InvalidTimestepsError(`timesteps must be at most ${MAX_TIMESTEPS}, got ${timesteps}`);
  if (name === 'linear' && timesteps < MIN_LINEAR_TIMESTEPS) {
    throw new InvalidTimestepsError(`the linear schedule needs timesteps >= ${MIN_LINEAR_TIMESTEPS} (its last beta, 0.02 x 1000/T, reaches 1 at T = 20), got ${timesteps}`);
  }
}

export function isScheduleName(name: string): name is ScheduleName {
  return (SCHEDULE_NAMES as readonly string[]).includes(name);
}

/** Ho et al. 2020, Sec. 4: betas linear from 1e-4 to 0.02 for T = 1000, rescaled for other T. */
export function linearBetas(timesteps: number): Float64Array {
  const scale = 1000 / timesteps;
  const start = scale * 1e-4;
  const end = scale * 0.02;
  const betas = new Float64Array(timesteps);
  // Same spacing as numpy.linspace(start, end, T): start + i * step, last value exactly end.
  const step = timesteps > 1 ? (end - start) / (timesteps - 1) : 0;
  for (let i = 0; i < timesteps; i++) betas[i] = i === timesteps - 1 ? end : start + i * step;
  return betas;
}

/** Nichol & Dhariwal 2021, Eq. 17: alphaBar(t) = cos^2(((t/T) + s) / (1 + s) * pi/2), s = 0.008. */
function cosineAlphaBar(t: number, timesteps: number): number {
  const s = 0.008;
  return Math.cos((((t / timesteps) + s) / (1 + s)) * (Math.PI / 2)) ** 2;
}

/** Improved DDPM's cosine betas: beta_t = min(1 - alphaBar(t+1)/alphaBar(t), 0.999). */
export function cosineBetas(timesteps: number): Float64Array {
  const betas = new Float64Array(timesteps);
  for (let i = 0; i < timesteps; i++) {
    betas[i] = Math.min(1 - cosineAlphaBar(i + 1, timesteps) / cosineAlphaBar(i, timesteps), 0.999);
  }
  return betas;
}

export function makeBetas(name: ScheduleName, timesteps: number): Float64Array {
  checkTimesteps(name, timesteps);
  switch (name) {
    case 'linear':
      return linearBetas(timesteps);
    case 'cosine':
      return cosineBetas(timesteps);
    default: {
      const never: never = name;
      throw new UnknownScheduleError(String(never));
    }
  }
}

/** All per-timestep constants of the forward and posterior processes (Ho et al. 2020, Eqs. 4, 6, 7). */
export interface DiffusionSchedule {
  readonly name: ScheduleName;
  readonly timesteps: number;
  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  /** beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t), Eq. 7. */
  readonly posteriorVariance: Float64Array;
  /** log beta~_t with the t = 0 entry (which is 0) replaced by beta~_1, as in the reference code. */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** Coefficient of x_0 in mu~_t, Eq. 7. */
  readonly posteriorMeanCoef1: Float64Array;
  /** Coefficient of x_t in mu~_t, Eq. 7. */
  readonly posteriorMeanCoef2: Float64Array;
}

export function makeSchedule(name: ScheduleName, timesteps: number): DiffusionSchedule {
  const betas = makeBetas(name, timesteps);
  const T = timesteps;
  const arr = () => new Float64Array(T);
  const alphas = arr();
  const alphasCumprod = arr();
  const alphasCumprodPrev = arr();
  const sqrtAlphasCumprod = arr();
  const sqrtOneMinusAlphasCumprod = arr();
  const sqrtRecipAlphasCumprod = arr();
  const sqrtRecipm1AlphasCumprod = arr();
  const posteriorVariance = arr();
  const posteriorLogVarianceClipped = arr();
  const posteriorMeanCoef1 = arr();
  const posteriorMeanCoef2 = arr();
  let cumprod = 1;
  for (let t = 0; t < T; t++) {
    alphas[t] = 1 - betas[t];
    alphasCumprodPrev[t] = cumprod;
    cumprod *= alphas[t];
    alphasCumprod[t] = cumprod;
  }
  for (let t = 0; t < T; t++) {
    const abar = alphasCumprod[t];
    const abarPrev = alphasCumprodPrev[t];
    sqrtAlphasCumprod[t] = Math.sqrt(abar);
    sqrtOneMinusAlphasCumprod[t] = Math.sqrt(1 - abar);
    sqrtRecipAlphasCumprod[t] = Math.sqrt(1 / abar);
    sqrtRecipm1AlphasCumprod[t] = Math.sqrt(1 / abar - 1);
    posteriorVariance[t] = (betas[t] * (1 - abarPrev)) / (1 - abar);
    posteriorMeanCoef1[t] = (betas[t] * Math.sqrt(abarPrev)) / (1 - abar);
    posteriorMeanCoef2[t] = ((1 - abarPrev) * Math.sqrt(alphas[t])) / (1 - abar);
  }
  for (let t = 0; t < T; t++) {
    posteriorLogVarianceClipped[t] = Math.log(t === 0 && T > 1 ? posteriorVariance[1] : posteriorVariance[t]);
  }
  return {
    name, timesteps: T, betas, alphas, alphasCumprod, alphasCumprodPrev, sqrtAlphasCumprod,
    sqrtOneMinusAlphasCumprod, sqrtRecipAlphasCumprod, sqrtRecipm1AlphasCumprod, posteriorVariance,
    posteriorLogVarianceClipped, posteriorMeanCoef1, posteriorMeanCoef2,
  };
}

/** Gathers one schedule array at a batch of timesteps, as improved-diffusion's _extract_into_tensor. */
export function extract(values: Float64Array, timesteps: ArrayLike<number>): Float32Array {
  const out = new Float32Array(timesteps.length);
  for (let i = 0; i < timesteps.length; i++) {
    const t = timesteps[i];
    if (!Number.isInteger(t) || t < 0 || t >= values.length) {
      throw new RangeError(`timestep ${t} outside [0, ${values.length - 1}]`);
    }
    out[i] = values[t];
  }
  return out;
}
