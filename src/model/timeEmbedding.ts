/**
 * Sinusoidal timestep embedding of the DDPM reference code (get_timestep_embedding, after
 * Vaswani et al. 2017, Sec. 3.5): [sin(t * f_i), cos(t * f_i)], f_i = exp(-ln(10000) i / (half - 1)).
 * Computed on the host in float64, then rounded once to float32.
 */
export function timestepEmbedding(timesteps: ArrayLike<number>, dim: number): Float32Array {
  const half = Math.floor(dim / 2);
  const scale = Math.log(10000) / Math.max(half - 1, 1);
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    for (let i = 0; i < half; i++) {
      const arg = timesteps[b] * Math.exp(-scale * i);
      out[b * dim + i] = Math.sin(arg);
      out[b * dim + half + i] = Math.cos(arg);
    }
  }
  return out;
}
