/**
 * Timesteps a sampler visits. DDIM (Song et al. 2021, Sec. 4.2) uses a sub-sequence tau of
 * [0, T); with uniform ("leading") spacing, as in diffusers' DDIMScheduler: for T = 1000 and
 * 50 steps it visits 980, 960, ..., 20, 0.
 */
export function ddimTimesteps(trainTimesteps: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1 || steps > trainTimesteps) {
    throw new RangeError(`sampling steps must be an integer in [1, ${trainTimesteps}], got ${steps}`);
  }
  const stride = Math.floor(trainTimesteps / steps);
  const out: number[] = [];
  for (let i = steps - 1; i >= 0; i--) out.push(i * stride);
  return out;
}

/** Full ancestral chain: T-1, T-2, ..., 0. */
export function allTimesteps(trainTimesteps: number): number[] {
  const out: number[] = [];
  for (let t = trainTimesteps - 1; t >= 0; t--) out.push(t);
  return out;
}
