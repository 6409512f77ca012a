/** Sampling images from a parameter vector (usually the EMA weights) with a chosen sampler. */
import * as tf from '@tensorflow/tfjs-core';
import { UNetModel } from '../model/unetModel';
import { DiffusionSchedule } from '../schedule';
import { SampleOptions, sample } from '../diffusion/samplers';
import { Rng, RngStream } from '../rng/rng';

export interface GenerateOptions extends Omit<SampleOptions, 'noise'> {
  n: number;
  seed: number;
  /** Images per forward pass; bounds memory. */
  chunk?: number;
}

/** Returns n images, NHWC in [-1, 1] (read asynchronously: webgpu has no synchronous read in Node). The same seed gives the same images on the same backend. */
export async function generateImages(model: UNetModel, params: Float32Array, schedule: DiffusionSchedule, opts: GenerateOptions): Promise<Float32Array> {
  const { imageSize: size, imageChannels: channels } = model.config;
  const perImage = size * size * channels;
  const out = new Float32Array(opts.n * perImage);
  const tensors = model.tensorsFromFlat(params);
  const chunk = opts.chunk ?? 64;
  try {
    for (let start = 0; start < opts.n; start += chunk) {
      const count = Math.min(chunk, opts.n - start);
      // One noise stream per chunk and draw, so results do not depend on timing or backend.
      let draw = 0;
      const noise = (shape: [number, number, number, number]) => {
        const rng = Rng.fromKey(opts.seed >>> 0, RngStream.sample, start, draw++);
        return tf.tensor4d(rng.gaussianFloat32(shape[0] * shape[1] * shape[2] * shape[3]), shape);
      };
      const images = sample(schedule, (xt, t) => model.forward(tensors, xt, t), [count, size, size, channels], { ...opts, noise });
      try {
        out.set((await images.data()) as Float32Array, start * perImage);
      } finally {
        images.dispose();
      }
    }
  } finally {
    tf.dispose(tensors);
  }
  return out;
}
