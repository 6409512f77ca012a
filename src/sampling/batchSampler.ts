/**
 * Who computes `ddpm sample`'s batches: this thread, or k sampling threads of their own
 * (sampleThreads.ts), each with its own backend and copy of the model, as a worker's compute
 * threads. A batch's noise is keyed by its first image (generate.ts), so the images do not depend
 * on how many threads there are or which one drew which batch.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { UNetModel } from '../model/unetModel';
import type { UNetConfig } from '../model/config';
import { DiffusionSchedule, ScheduleName, makeSchedule } from '../schedule';
import { SampleThreads } from './sampleThreads';
import { GenerateOptions, checkLabels, generateBatch } from '../training/generate';

/** Everything a sampling thread needs, as structured-clonable data. */
export interface SampleJob {
  backend: string;
  model: UNetConfig;
  schedule: ScheduleName;
  timesteps: number;
  weights: Float32Array;
  options: Omit<GenerateOptions, 'onStep' | 'chunk'>;
}

export interface BatchSampler {
  /** Batches computed at once. */
  readonly slots: number;
  /** Images start..start+count, NHWC in [-1, 1]. */
  sample(start: number, count: number): Promise<Float32Array>;
  stop(): Promise<void>;
}

/** One slot, in this thread. */
export class InlineBatchSampler implements BatchSampler {
  readonly slots = 1;
  private readonly model: UNetModel;
  private readonly schedule: DiffusionSchedule;
  private tensors: tf.Tensor[] | undefined;

  constructor(private readonly job: SampleJob) {
    checkLabels(job.options);
    this.model = new UNetModel(job.model);
    this.schedule = makeSchedule(job.schedule, job.timesteps);
    this.tensors = this.model.tensorsFromFlat(job.weights);
  }

  sample(start: number, count: number): Promise<Float32Array> {
    if (this.tensors === undefined) return Promise.reject(new Error('sampler stopped'));
    return generateBatch(this.model, this.tensors, this.schedule, this.job.options, start, count);
  }

  async stop(): Promise<void> {
    this.tensors?.forEach((t) => t.dispose());
    this.tensors = undefined;
  }
}

/** `threads` sampling threads of their own, or this thread when 1. */
export async function startBatchSampler(threads: number, job: SampleJob): Promise<BatchSampler> {
  if (threads > 1) return SampleThreads.start(threads, job);
  return new InlineBatchSampler(job);
}
