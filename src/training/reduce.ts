/**
 * Reduction of unit results in unit order, whatever order they arrived in, so the sum is the same
 * bit for bit for any number of workers (DESIGN.md equivalence contract).
 *
 * The float64 sum is sum = ((g_0 + g_1) + g_2) + ..., the mean float32(sum / examples). Passes
 * over the whole vector are what a step's reduction costs (136 MiB of gradient per unit for the
 * 35.7M-parameter model), so: the first unit is assigned rather than added (no zeroing), and the
 * last unit's add, the division and the gradient norm's sums of squares are one pass that never
 * stores the sum. With one unit the float64 sum is not touched at all.
 */
import { NORM_BLOCK } from './optimizer';
import { LOSS_BUCKETS, UnitResult } from './workUnit';

export interface ReducedStep {
  /** Mean gradient over the global batch. */
  meanGrad: Float32Array;
  /** Its globalNorm (optimizer.ts), computed in the same pass. */
  gradNorm: number;
  meanLoss: number;
  examples: number;
  lossByBucket: Float64Array;
  countByBucket: Float64Array;
}

/** Accumulates results as they arrive, adding each as soon as all units before it are in. */
export class OrderedReducer {
  private readonly pending = new Map<number, UnitResult>();
  private readonly sum: Float64Array;
  private next = 0;
  private lossSum = 0;
  private examples = 0;
  private gradNorm = NaN;
  private lossByBucket = new Float64Array(LOSS_BUCKETS);
  private countByBucket = new Float64Array(LOSS_BUCKETS);
  readonly mean: Float32Array;

  /** `sharedMean`: the mean lives in a SharedArrayBuffer, for the update threads to read. */
  constructor(private unitCount: number, paramCount: number, sharedMean = false) {
    this.sum = new Float64Array(paramCount);
    this.mean = new Float32Array(sharedMean ? new SharedArrayBuffer(paramCount * 4) : new ArrayBuffer(paramCount * 4));
  }

  /** Starts another step with the same buffers (fresh arrays of hundreds of MB would cost their
   * page faults again every step). The last finish()'s meanGrad is overwritten. */
  reset(unitCount: number): void {
    this.unitCount = unitCount;
    this.pending.clear();
    this.next = 0;
    this.lossSum = 0;
    this.examples = 0;
    this.gradNorm = NaN;
    this.lossByBucket = new Float64Array(LOSS_BUCKETS);
    this.countByBucket = new Float64Array(LOSS_BUCKETS);
  }

  /** Returns false for a unit already received (a duplicate) or one outside the step. */
  add(result: UnitResult): boolean {
    if (!Number.isInteger(result.unitId) || result.unitId >= this.unitCount) return false;
    if (result.unitId < this.next || this.pending.has(result.unitId)) return false;
    this.pending.set(result.unitId, result);
    for (let r = this.pending.get(this.next); r !== undefined; r = this.pending.get(this.next)) {
      this.pending.delete(this.next);
      this.lossSum += r.lossSum;
      this.examples += r.count;
      for (let b = 0; b < LOSS_BUCKETS; b++) {
        this.lossByBucket[b] += r.lossByBucket[b];
        this.countByBucket[b] += r.countByBucket[b];
      }
      if (this.next === this.unitCount - 1) this.lastPass(r.gradSum, this.next === 0);
      else this.addPass(r.gradSum, this.next === 0);
      this.next++;
    }
    return true;
  }

  /** sum = g (adding +0: 0 + -0 is +0, as the sum from zero would give), or sum += g. */
  private addPass(g: Float32Array, first: boolean): void {
    const s = this.sum;
    if (first) for (let i = 0; i < s.length; i++) s[i] = g[i] + 0;
    else for (let i = 0; i < s.length; i++) s[i] += g[i];
  }

  /** mean = float32((sum + g) / examples), and the norm of mean in globalNorm's block order. */
  private lastPass(g: Float32Array, only: boolean): void {
    const { sum, mean, examples } = this;
    const n = mean.length;
    let total = 0;
    for (let lo = 0; lo < n; lo += NORM_BLOCK) {
      const hi = Math.min(n, lo + NORM_BLOCK);
      let sq = 0;
      if (only) {
        for (let i = lo; i < hi; i++) {
          const m = Math.fround((g[i] + 0) / examples);
          mean[i] = m;
          sq += m * m;
        }
      } else {
        for (let i = lo; i < hi; i++) {
          const m = Math.fround((sum[i] + g[i]) / examples);
          mean[i] = m;
          sq += m * m;
        }
      }
      total += sq;
    }
    this.gradNorm = Math.sqrt(total);
  }

  has(unitId: number): boolean {
    return unitId < this.next || this.pending.has(unitId);
  }

  get complete(): boolean {
    return this.next === this.unitCount;
  }

  finish(): ReducedStep {
    if (!this.complete || this.unitCount === 0) throw new Error(`reduction incomplete: ${this.next} of ${this.unitCount} units`);
    return {
      meanGrad: this.mean, gradNorm: this.gradNorm, meanLoss: this.lossSum / this.examples, examples: this.examples,
      lossByBucket: this.lossByBucket, countByBucket: this.countByBucket,
    };
  }
}
