/**
 * GroupNorm and swish arithmetic on float32 arrays: the JavaScript path of the fused kernels
 * (cpu backend, and wasm when its SIMD module cannot run), and the reference the SIMD C mirrors.
 */
/**
 * Per-(example, group) mean and 1/sqrt(var + eps) of x viewed as [n, hw, c], groups of c/groups
 * consecutive channels; one pass, float64 sums, results rounded to float32 (the values the
 * forward and backward both use).
 */
export function groupStats(x: Float32Array, n: number, hw: number, c: number, groups: number, eps: number, mean: Float32Array, rstd: Float32Array): void {
  const cg = c / groups;
  const count = hw * cg;
  const s = new Float64Array(c);
  const q = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    s.fill(0);
    q.fill(0);
    const end = (b + 1) * hw * c;
    for (let o = b * hw * c; o < end; o += c) {
      for (let ch = 0; ch < c; ch++) {
        const v = x[o + ch];
        s[ch] += v;
        q[ch] += v * v;
      }
    }
    for (let g = 0; g < groups; g++) {
      let sg = 0;
      let qg = 0;
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        sg += s[ch];
        qg += q[ch];
      }
      const m = sg / count;
      const variance = Math.max(qg / count - m * m, 0);
      mean[b * groups + g] = m;
      rstd[b * groups + g] = 1 / Math.sqrt(variance + eps);
    }
  }
}

/** z = (x - mean) rstd gamma + beta, written as x scale + shift per (example, channel). */
export function groupAffine(x: Float32Array, gamma: Float32Array, beta: Float32Array, mean: Float32Array, rstd: Float32Array, n: number, hw: number, c: number, groups: number, z: Float32Array): void {
  const cg = c / groups;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const g = b * groups + Math.floor(ch / cg);
      scale[ch] = rstd[g] * gamma[ch];
      shift[ch] = beta[ch] - mean[g] * scale[ch];
    }
    const end = (b + 1) * hw * c;
    for (let o = b * hw * c; o < end; o += c) {
      for (let ch = 0; ch < c; ch++) z[o + ch] = x[o + ch] * scale[ch] + shift[ch];
    }
  }
}

/** dz = dy s (1 + z (1 - s)): the gradient of z sigmoid(z), given s = sigmoid(z). In place over z. */
export function swishBackward(dy: Float32Array, z: Float32Array, s: Float32Array, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const si = s[i];
    out[i] = dy[i] * si * (1 + z[i] * (1 - si));
  }
}

/**
 * The GroupNorm backward from dz (the gradient at z): dx into `dx` (may alias dz), dgamma and
 * dbeta summed over the examples.
 */
export function groupNormBackward(dz: Float32Array, x: Float32Array, gamma: Float32Array, mean: Float32Array, rstd: Float32Array, n: number, hw: number, c: number, groups: number,
  dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array): void {
  const cg = c / groups;
  const count = hw * cg;
  const sumDz = new Float64Array(c);
  const sumDzX = new Float64Array(c);
  const dgammaAcc = new Float64Array(c);
  const dbetaAcc = new Float64Array(c);
  const a = new Float64Array(c);
  const bx = new Float64Array(c);
  const k = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    sumDz.fill(0);
    sumDzX.fill(0);
    const start = b * hw * c;
    const end = start + hw * c;
    for (let o = start; o < end; o += c) {
      for (let ch = 0; ch < c; ch++) {
        const d = dz[o + ch];
        sumDz[ch] += d;
        sumDzX[ch] += d * x[o + ch];
      }
    }
    for (let g = 0; g < groups; g++) {
      const m = mean[b * groups + g];
      const r = rstd[b * groups + g];
      // Over the group: sum dyhat = sum gamma dz; sum dyhat xhat = sum gamma r (dz x - m dz).
      let s1 = 0;
      let s2 = 0;
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        const dzXhat = r * (sumDzX[ch] - m * sumDz[ch]);
        dgammaAcc[ch] += dzXhat;
        dbetaAcc[ch] += sumDz[ch];
        s1 += gamma[ch] * sumDz[ch];
        s2 += gamma[ch] * dzXhat;
      }
      const m1 = s1 / count;
      const m2 = s2 / count;
      // dx = r (gamma dz - m1 - (x - m) r m2) = dz (r gamma) + x (-r^2 m2) + (r^2 m2 m - r m1).
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        a[ch] = r * gamma[ch];
        bx[ch] = -r * r * m2;
        k[ch] = r * r * m2 * m - r * m1;
      }
    }
    for (let o = start; o < end; o += c) {
      for (let ch = 0; ch < c; ch++) dx[o + ch] = dz[o + ch] * a[ch] + x[o + ch] * bx[ch] + k[ch];
    }
  }
  for (let ch = 0; ch < c; ch++) {
    dgamma[ch] = dgammaAcc[ch];
    dbeta[ch] = dbetaAcc[ch];
  }
}
