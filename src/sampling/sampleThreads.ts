/** `ddpm sample --threads k`: k sampling threads (sampleThread.ts), each with its own tfjs backend
 * and copy of the model; a batch goes to the thread with the fewest waiting. */
import { threadScript } from '../util/threadScript';
import { ThreadPool } from '../util/threadPool';
import type { BatchSampler, SampleJob } from './batchSampler';

export interface BatchRequest {
  start: number;
  count: number;
}

export class SampleThreads implements BatchSampler {
  private constructor(private readonly pool: ThreadPool<BatchRequest, Float32Array>) {}

  /** Starts k threads and waits until each has its backend and model; fails if any cannot. */
  static async start(k: number, job: SampleJob): Promise<SampleThreads> {
    const script = threadScript(__dirname, 'sampling', 'sampleThread');
    return new SampleThreads(await ThreadPool.start<BatchRequest, Float32Array>(script, k, job, 'sampling thread'));
  }

  get slots(): number {
    return this.pool.size;
  }

  sample(start: number, count: number): Promise<Float32Array> {
    return this.pool.call({ start, count });
  }

  stop(): Promise<void> {
    return this.pool.dispose();
  }
}
