/** Runs `ddpm sample`'s batches on a BatchSampler, keeping each of its slots busy. */
import type { BatchSampler } from './batchSampler';

export interface Batch {
  start: number;
  count: number;
}

/** n images in batches of `size`, the last one shorter: the batches a seed's noise is keyed by. */
export function batchPlan(n: number, size: number): Batch[] {
  const out: Batch[] = [];
  for (let start = 0; start < n; start += size) out.push({ start, count: Math.min(size, n - start) });
  return out;
}

/** Computes the batches, two per slot in flight (a thread starts its next one while its last is
 * being handed over), and gives each to `onBatch` as it is done, so in no fixed order. Stops at the
 * first failure and rethrows it. */
export async function runBatches(sampler: BatchSampler, batches: Batch[], onBatch: (batch: Batch, images: Float32Array) => void): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < batches.length) {
      const batch = batches[next++];
      try {
        onBatch(batch, await sampler.sample(batch.start, batch.count));
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(batches.length, 2 * sampler.slots) }, lane));
}
