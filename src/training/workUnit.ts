/** What a worker computes and returns; the wire protocol carries exactly these fields. */

export interface WorkUnit {
  step: number;
  /** Position of the unit in the step's batch: reduction happens in this order. */
  unitId: number;
  count: number;
  /** uint8 pixels, NHWC, already fitted to the model's size. */
  pixels: Uint8Array;
  timesteps: Int32Array;
  noiseSeeds: Uint32Array;
  /** 1 = flip this example horizontally before noising. */
  flips: Uint8Array;
  /** Seed of this unit's dropout masks (unused when dropout is 0). */
  dropoutSeed: number;
  /** A class-conditional model's class per example; the model's class count means "no class". */
  labels?: Uint8Array;
}

export const LOSS_BUCKETS = 10;

export interface UnitResult {
  step: number;
  unitId: number;
  paramVersion: number;
  count: number;
  /** Sum over the unit's examples of the per-example loss. */
  lossSum: number;
  /** Loss sums and example counts per timestep bucket (T split into LOSS_BUCKETS equal ranges). */
  lossByBucket: Float64Array;
  countByBucket: Float64Array;
  /** Sum over the unit's examples of d(loss)/d(params), flattened in parameter-spec order. */
  gradSum: Float32Array;
  computeSeconds: number;
}

export function bucketOf(t: number, timesteps: number): number {
  return Math.min(LOSS_BUCKETS - 1, Math.floor((t * LOSS_BUCKETS) / timesteps));
}
