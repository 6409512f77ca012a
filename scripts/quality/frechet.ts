/**
 * Fréchet distance between two Gaussians fitted to feature sets (the maths of FID), in float64
 * plain TypeScript: the matrices are d x d with d = 64, too small to need a backend, and float32
 * would lose the difference of large traces.
 *
 *   FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))
 *
 * tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2, which are those of
 * the symmetric PSD matrix sqrt(S1) S2 sqrt(S1); so only symmetric eigen-decompositions are needed
 * (Jacobi), never a general matrix square root.
 *
 * Matrices are row-major Float64Arrays of d * d values.
 */

export interface Gaussian {
  dim: number;
  mean: Float64Array;
  /** Unbiased (n - 1) sample covariance, d x d. */
  cov: Float64Array;
}

/** Mean and covariance of n feature rows of length dim (row-major). */
export function fitGaussian(features: ArrayLike<number>, n: number, dim: number): Gaussian {
  if (n < 2 || features.length !== n * dim) throw new RangeError(`fitGaussian: need n >= 2 rows of ${dim}, got ${features.length} values for n = ${n}`);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += features[i * dim + j];
  for (let j = 0; j < dim; j++) mean[j] /= n;
  const cov = new Float64Array(dim * dim);
  const row = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) row[j] = features[i * dim + j] - mean[j];
    for (let a = 0; a < dim; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < dim; b++) cov[a * dim + b] += ra * row[b];
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b] / (n - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return { dim, mean, cov };
}

/** Fréchet distance between two Gaussians of the same dimension. */
export function frechetDistance(g1: Gaussian, g2: Gaussian): number {
  const d = g1.dim;
  if (g2.dim !== d) throw new RangeError(`frechetDistance: dimensions differ (${d} vs ${g2.dim})`);
  let meanTerm = 0;
  for (let j = 0; j < d; j++) meanTerm += (g1.mean[j] - g2.mean[j]) ** 2;
  const root1 = sqrtPsd(g1.cov, d);
  const m = matMul(matMul(root1, g2.cov, d), root1, d);
  const { values } = jacobiEigen(symmetrise(m, d), d);
  let traceRoot = 0;
  for (const v of values) traceRoot += Math.sqrt(Math.max(0, v));
  return meanTerm + trace(g1.cov, d) + trace(g2.cov, d) - 2 * traceRoot;
}

/** Square root of a symmetric PSD matrix: V diag(sqrt(max(l, 0))) V^T. Negative eigenvalues are rounding noise. */
export function sqrtPsd(a: Float64Array, d: number): Float64Array {
  const { values, vectors } = jacobiEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(0, values[k]));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = vectors[i * d + k] * s;
      for (let j = 0; j < d; j++) out[i * d + j] += vik * vectors[j * d + k];
    }
  }
  return out;
}

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations (Golub & Van Loan 8.5):
 * a = V diag(values) V^T, eigenvectors in the columns of V. The input is not modified.
 */
export function jacobiEigen(input: Float64Array, d: number, maxSweeps = 100): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(input);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  const total = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q] ** 2;
    if (Math.sqrt(2 * off) <= 1e-14 * total || off === 0) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q];
        if (apq === 0) continue;
        // The rotation angle that zeroes a[p][q]; t is the smaller root, for stability.
        const theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          // Columns p and q of A, then rows p and q: A <- J^T A J.
          const akp = a[k * d + p];
          const akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k];
          const aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = a[i * d + i];
  return { values, vectors: v };
}

export function matMul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
    }
  }
  return out;
}

function symmetrise(a: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i * d + j] = (a[i * d + j] + a[j * d + i]) / 2;
  return out;
}

function trace(a: Float64Array, d: number): number {
  let t = 0;
  for (let i = 0; i < d; i++) t += a[i * d + i];
  return t;
}
