/** A sampling thread (sampleThreads.ts): its own tfjs backend and copy of the model; batches in
 * the order they arrive. */
import { BackendName, initBackend } from '../backend/backend';
import { serveThread } from '../util/threadPool';
import { InlineBatchSampler, SampleJob } from './batchSampler';
import type { BatchRequest } from './sampleThreads';

void serveThread<BatchRequest, Float32Array>(async (data) => {
  const job = data as SampleJob;
  const backend = await initBackend(job.backend as BackendName);
  const sampler = new InlineBatchSampler(job);
  return {
    info: backend,
    call: async ({ start, count }) => {
      // A copy of its own: the backend's read may be a view of storage it still owns.
      const images = (await sampler.sample(start, count)).slice();
      return { value: images, transfer: [images.buffer as ArrayBuffer] };
    },
  };
});
