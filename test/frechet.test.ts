/**
 * The Fréchet distance behind `npm run quality:digits` (scripts/quality/frechet.ts) against closed
 * forms: d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).
 */
import { Gaussian, fitGaussian, frechetDistance } from '../scripts/quality/frechet';

const gaussian = (mean: number[], cov: number[][]): Gaussian => ({ dim: mean.length, mean: Float64Array.from(mean), cov: Float64Array.from(cov.flat()) });

/** R diag(l) R^T for a rotation R built from Givens rotations by the given angles. */
function rotated(l: number[], angles: number[]): number[][] {
  const d = l.length;
  const r: number[][] = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? 1 : 0)));
  angles.forEach((a, k) => {
    const p = k % d;
    const q = (k + 1) % d;
    for (let i = 0; i < d; i++) {
      const [x, y] = [r[i][p], r[i][q]];
      r[i][p] = Math.cos(a) * x - Math.sin(a) * y;
      r[i][q] = Math.sin(a) * x + Math.cos(a) * y;
    }
  });
  return r.map((ri) => r.map((rj) => ri.reduce((s, v, k) => s + v * l[k] * rj[k], 0)));
}

describe('frechetDistance', () => {
  it('is 0 between a Gaussian and itself', () => {
    const g = gaussian([1, -2, 0.5], rotated([4, 1, 0.25], [0.3, 1.1, -0.7]));
    expect(frechetDistance(g, g)).toBeCloseTo(0, 9);
  });

  it('matches |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2 for covariances with the same eigenvectors', () => {
    const a = [4, 1, 0.25, 9];
    const b = [1, 2, 0.5, 16];
    const angles = [0.4, -1.3, 2.2, 0.9, 0.1];
    const g1 = gaussian([0, 1, 2, 3], rotated(a, angles));
    const g2 = gaussian([1, 1, 0, 3], rotated(b, angles));
    const expected = 1 + 4 + a.reduce((s, ai, i) => s + (Math.sqrt(ai) - Math.sqrt(b[i])) ** 2, 0);
    expect(frechetDistance(g1, g2)).toBeCloseTo(expected, 9);
  });

  it('matches the 2x2 closed form tr sqrt(M) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) for covariances that do not commute', () => {
    const s1 = [[2, 0.6], [0.6, 1]];
    const s2 = [[1, -0.3], [-0.3, 3]];
    const trS1S2 = s1[0][0] * s2[0][0] + s1[0][1] * s2[1][0] + s1[1][0] * s2[0][1] + s1[1][1] * s2[1][1];
    const det = (m: number[][]) => m[0][0] * m[1][1] - m[0][1] * m[1][0];
    const traceRoot = Math.sqrt(trS1S2 + 2 * Math.sqrt(det(s1) * det(s2)));
    const expected = 0.5 ** 2 + 3 + 4 - 2 * traceRoot;
    expect(frechetDistance(gaussian([0, 0], s1), gaussian([0.5, 0], s2))).toBeCloseTo(expected, 9);
  });

  it('fits the unbiased sample mean and covariance', () => {
    const g = fitGaussian([1, 2, 3, 6, 5, 10], 3, 2);
    expect(Array.from(g.mean)).toEqual([3, 6]);
    // Deviations (-2,-4), (0,0), (2,4): sum of products / (n - 1).
    expect(Array.from(g.cov)).toEqual([4, 8, 8, 16]);
  });
});
