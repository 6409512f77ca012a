/**
 * Timesteps a sampler visits. DDIM (Song et al. 2021, Sec. 4.2) uses a sub-sequence tau of
 * [0, T); with uniform ("leading") spacing, as in diffusers' DDIMScheduler: for T = 1000 and
 * 50 steps it visits 980, 960, ..., 20, 0.
 */
export function ddimTimesteps(trainTimesteps: number, steps: number): number[] {
  checkSteps(trainTimesteps, steps);
  const stride = Math.floor(trainTimesteps / steps);
  const out: number[] = [];
  for (let i = steps - 1; i >= 0; i--) out.push(i * stride);
  return out;
}

function checkSteps(trainTimesteps: number, steps: number): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > trainTimesteps) {
    throw new RangeError(`sampling steps must be an integer in [1, ${trainTimesteps}], got ${steps}`);
  }
}

/** DPM-Solver's lower end of lambda (Lu et al. 2022, App. D: the cosine schedule truncated where
 * the linear one ends, lambda(T-1) = -5.06 for T = 1000): below it x_t is noise for any purpose,
 * and the cosine schedule's last few timesteps (beta clipped to 0.999) reach lambda = -10. */
const LAMBDA_FLOOR = -5.1;

/**
 * `steps` timesteps from T-1 down to 0, evenly spaced in the log signal-to-noise ratio
 * lambda_t = log(sqrt(abar_t) / sqrt(1 - abar_t)) between max(lambda(T-1), LAMBDA_FLOOR) and
 * lambda(0): the spacing Lu et al. (2022, DPM-Solver, Sec. 3.3 and App. D.1) give their solver for
 * low-resolution pixel models. Uniform-in-t spacing leaves a few huge steps in lambda near t = 0,
 * which a multistep solver's extrapolation does not survive. Each point goes to the timestep
 * nearest in lambda; where points would share one (near either end), they are moved apart so
 * that all `steps` are distinct; the first is always T-1, where sampling starts from pure noise.
 */
export function logSnrTimesteps(alphasCumprod: ArrayLike<number>, steps: number): number[] {
  const T = alphasCumprod.length;
  checkSteps(T, steps);
  const lambda = (t: number) => 0.5 * Math.log(alphasCumprod[t] / (1 - alphasCumprod[t]));
  const nearest = (target: number): number => {
    // lambda decreases with t: find the first t with lambda(t) <= target, then compare neighbours.
    let lo = 0;
    let hi = T - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (lambda(mid) <= target) hi = mid;
      else lo = mid + 1;
    }
    return lo > 0 && Math.abs(lambda(lo - 1) - target) < Math.abs(lambda(lo) - target) ? lo - 1 : lo;
  };
  const top = Math.max(lambda(T - 1), LAMBDA_FLOOR);
  const bottom = lambda(0);
  const out = Array.from({ length: steps }, (_, i) => (i === 0 ? T - 1 : nearest(top + ((bottom - top) * i) / (steps - 1))));
  // Two passes make the entries distinct, decreasing and in [0, T-1]: after the first,
  // out[i] <= T-1-i; the second raises out[i] to at least steps-1-i <= T-1-i.
  for (let i = 1; i < steps; i++) out[i] = Math.min(out[i], out[i - 1] - 1);
  for (let i = steps - 1; i >= 0; i--) out[i] = Math.max(out[i], i === steps - 1 ? 0 : out[i + 1] + 1);
  return out;
}

/** Full ancestral chain: T-1, T-2, ..., 0. */
export function allTimesteps(trainTimesteps: number): number[] {
  const out: number[] = [];
  for (let t = trainTimesteps - 1; t >= 0; t--) out.push(t);
  return out;
}
