/**
 * The global batch of step k, derived from (seed, k) alone (DESIGN.md): example indices from a
 * seeded permutation per epoch, one timestep, noise seed and flip bit per example (and a
 * conditional run's label, or "no class"), cut into fixed work units. Which worker computes which
 * unit changes nothing.
 */
import { Rng, RngStream, hashKey } from '../rng/rng';

export interface PlanConfig {
  seed: number;
  datasetSize: number;
  batchSize: number;
  unitSize: number;
  timesteps: number;
  flip: boolean;
  /** A class-conditional run's dataset labels and how often a label is replaced by "no class"
   * (`classes`) so that one model learns both predictions classifier-free guidance mixes. */
  labels?: { of: Uint8Array; classes: number; dropProbability: number };
}

export interface UnitPlan {
  unitId: number;
  indices: Uint32Array;
  timesteps: Int32Array;
  noiseSeeds: Uint32Array;
  flips: Uint8Array;
  dropoutSeed: number;
  labels?: Uint8Array;
}

export class BatchPlanner {
  private cachedEpoch = -1;
  private cachedPermutation: Uint32Array = new Uint32Array(0);

  constructor(private readonly cfg: PlanConfig) {
    if (cfg.datasetSize < 1) throw new RangeError('dataset is empty');
  }

  unitCount(): number {
    return Math.ceil(this.cfg.batchSize / this.cfg.unitSize);
  }

  private permutation(epoch: number): Uint32Array {
    if (epoch !== this.cachedEpoch) {
      this.cachedPermutation = Rng.fromKey(this.cfg.seed, RngStream.epochPermutation, epoch).permutation(this.cfg.datasetSize);
      this.cachedEpoch = epoch;
    }
    return this.cachedPermutation;
  }

  /** Position of step k's first example in the endless sequence of epochs. */
  cursor(step: number): number {
    return step * this.cfg.batchSize;
  }

  plan(step: number): UnitPlan[] {
    const { seed, datasetSize, batchSize, unitSize, timesteps, flip, labels } = this.cfg;
    const tRng = Rng.fromKey(seed, RngStream.timestep, step);
    const units: UnitPlan[] = [];
    for (let u = 0; u * unitSize < batchSize; u++) {
      const count = Math.min(unitSize, batchSize - u * unitSize);
      const plan: UnitPlan = {
        unitId: u,
        indices: new Uint32Array(count),
        timesteps: new Int32Array(count),
        noiseSeeds: new Uint32Array(count),
        flips: new Uint8Array(count),
        dropoutSeed: hashKey(seed, RngStream.dropout, step, u),
        labels: labels && new Uint8Array(count),
      };
      for (let i = 0; i < count; i++) {
        const position = this.cursor(step) + u * unitSize + i;
        const epoch = Math.floor(position / datasetSize);
        plan.indices[i] = this.permutation(epoch)[position % datasetSize];
        plan.timesteps[i] = tRng.nextInt(timesteps);
        plan.noiseSeeds[i] = hashKey(seed, RngStream.noiseSeed, step, u * unitSize + i);
        plan.flips[i] = flip ? hashKey(seed, RngStream.flip, step, u * unitSize + i) & 1 : 0;
        if (labels && plan.labels) {
          const dropped = hashKey(seed, RngStream.classDrop, step, u * unitSize + i) / 2 ** 32 < labels.dropProbability;
          plan.labels[i] = dropped ? labels.classes : labels.of[plan.indices[i]];
        }
      }
      units.push(plan);
    }
    return units;
  }
}
