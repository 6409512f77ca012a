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

/** Accumulates results as they arrive, adding each as soon as all units before it are in. */
export class OrderedReducer {
  private readonly pending = new Map<number, UnitResult>();
  private readonly sum: Float64Array;
  private next = 0;
  private lossSum = 0;
  private examples = 0;
  private lossByBucket = new Float64Array(LOSS_BUCKETS);
  private countByBucket = new Float64Array(LOSS_BUCKETS);
  private readonly mean: Float32Array;

  constructor(private unitCount: number, paramCount: number) {
    this.sum = new Float64Array(paramCount);
    this.mean = new Float32Array(paramCount);
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
    for (let i = 0; i < meanGrad.length; i++) meanGrad[i] = this.sum[i] / this.examples;
    return { meanGrad, meanLoss: this.lossSum / this.examples, examples: this.examples, lossByBucket: this.lossByBucket, countByBucket: this.countByBucket };
  }
}
