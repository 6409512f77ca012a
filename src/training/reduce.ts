/**
 * Reduction of unit results in unit order, whatever order they arrived in, so the sum is the same
 * bit for bit for any number of workers (DESIGN.md equivalence contract).
 */
import { LOSS_BUCKETS, UnitResult } from './workUnit';

export interface ReducedStep {
  /** Mean gradient over the global batch. */
  meanGrad: Float32Array;
  meanLoss: number;
  examples: number;
  lossByBucket: Float64Array;
  countByBucket: Float64Array;
}

/** mean[i] = sum[i] / examples over the whole arrays (possibly on several threads). */
export type MeanPass = (sum: Float64Array, mean: Float32Array, examples: number) => void;

export function meanRange(sum: Float64Array, mean: Float32Array, examples: number, lo: number, hi: number): void {
  for (let i = lo; i < hi; i++) mean[i] = sum[i] / examples;
}

/** Accumulates results as they arrive, adding each as soon as all units before it are in. */
export class OrderedReducer {
  private readonly pending = new Map<number, UnitResult>();
  readonly sum: Float64Array;
  private next = 0;
  private lossSum = 0;
  private examples = 0;
  private lossByBucket = new Float64Array(LOSS_BUCKETS);
  private countByBucket = new Float64Array(LOSS_BUCKETS);
  readonly mean: Float32Array;
  /** Computes the mean instead of this thread's loop (e.g. UpdateThreads over shared arrays). */
  meanPass: MeanPass | undefined;

  /** `shared`: the sum and mean live in SharedArrayBuffers, so that threads can compute the mean. */
  constructor(private unitCount: number, paramCount: number, shared = false) {
    const alloc = (bytes: number) => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
    this.sum = new Float64Array(alloc(paramCount * 8));
    this.mean = new Float32Array(alloc(paramCount * 4));
  }

  /** Starts another step with the same buffers, zeroed: fresh arrays of hundreds of MB would
   * cost their page faults again every step. The last finish()'s meanGrad is overwritten. */
  reset(unitCount: number): void {
    this.unitCount = unitCount;
    this.sum.fill(0);
    this.pending.clear();
    this.next = 0;
    this.lossSum = 0;
    this.examples = 0;
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
      const g = r.gradSum;
      const s = this.sum;
      for (let i = 0; i < s.length; i++) s[i] += g[i];
      this.lossSum += r.lossSum;
      this.examples += r.count;
      for (let b = 0; b < LOSS_BUCKETS; b++) {
        this.lossByBucket[b] += r.lossByBucket[b];
        this.countByBucket[b] += r.countByBucket[b];
      }
      this.next++;
    }
    return true;
  }

  has(unitId: number): boolean {
    return unitId < this.next || this.pending.has(unitId);
  }

  get complete(): boolean {
    return this.next === this.unitCount;
  }

  finish(): ReducedStep {
    if (!this.complete) throw new Error(`reduction incomplete: ${this.next} of ${this.unitCount} units`);
    const meanGrad = this.mean;
    if (this.meanPass) this.meanPass(this.sum, meanGrad, this.examples);
    else meanRange(this.sum, meanGrad, this.examples, 0, meanGrad.length);
    return { meanGrad, meanLoss: this.lossSum / this.examples, examples: this.examples, lossByBucket: this.lossByBucket, countByBucket: this.countByBucket };
  }
}
