/** Sampling images from a parameter vector (usually the EMA weights) with a chosen sampler. */
import * as tf from '@tensorflow/tfjs-core';
import { UNetModel } from '../model/unetModel';
import { DiffusionSchedule } from '../schedule';
import { SampleOptions, SamplerName, sample } from '../diffusion/samplers';
import { guide } from '../diffusion/guidance';
import type { Denoiser, PredictionTarget } from '../diffusion/types';
import { type UNetConfig, classCount } from '../model/config';
import { Rng, RngStream } from '../rng/rng';

export interface GenerateOptions extends Omit<SampleOptions, 'noise'> {
  n: number;
  seed: number;
  /** Images per forward pass; bounds memory. */
  chunk?: number;
  /** A class-conditional model's class for each of the n images (the class count: "no class"). */
  labels?: Uint8Array;
  /** Classifier-free guidance scale (diffusion/guidance.ts); 1, the default: the conditional model alone. */
  guidance?: number;
}

/** The guidance scale of sample grids and `ddpm sample` unless told otherwise. */
export const DEFAULT_GUIDANCE = 2;

/** Images per forward pass unless told otherwise: the unit of the noise streams, so part of what a
 * seed means. */
export const DEFAULT_SAMPLE_BATCH = 64;

/** Why a guidance scale will not do what it says for this run, if it will not: with no label ever
 * dropped, the "no class" row was never trained, and guidance mixes in an untrained prediction. */
export function guidanceCaveat(config: { model: UNetConfig; classDropout: number }, guidance: number): string | undefined {
  if (classCount(config.model) === 0 || config.classDropout > 0 || guidance === 1) return undefined;
  return `note: this run trains with --class-dropout 0, so its "no class" prediction is untrained and guidance ${guidance} mixes it in; use guidance 1 or a class dropout like 0.1`;
}

/** Image i of n in class i mod classes: a grid's rows then read 0, 1, 2, ... */
export function cyclingLabels(n: number, classes: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => i % classes);
}

/** A sample grid's labels: every class in turn for a conditional model, none for an unconditional one. */
export function gridLabels(config: UNetConfig, n: number): Uint8Array | undefined {
  const classes = classCount(config);
  return classes > 0 ? cyclingLabels(n, classes) : undefined;
}

/** The model as a Denoiser: unconditional, conditional on `labels`, or guided (both in one pass of
 * twice the batch, the second half labelled "no class"). */
function denoiser(model: UNetModel, tensors: tf.Tensor[], labels: Uint8Array | undefined, guidance: number): Denoiser {
  const classes = classCount(model.config);
  if (classes === 0) {
    if (labels !== undefined) throw new RangeError('labels given for an unconditional model');
    return (xt, t) => model.forward(tensors, xt, t);
  }
  if (labels === undefined) throw new RangeError(`a class-conditional model (${classes} classes) needs a label per image`);
  if (guidance === 1) return (xt, t) => model.forward(tensors, xt, t, { labels });
  const both = new Uint8Array(2 * labels.length).fill(classes);
  both.set(labels);
  return (xt, t) => tf.tidy(() => {
    const out = model.forward(tensors, tf.concat([xt, xt]), Int32Array.from([...t, ...t]), { labels: both });
    const [conditional, unconditional] = tf.split(out, 2) as [tf.Tensor4D, tf.Tensor4D];
    return guide(conditional, unconditional, guidance);
  });
}

/** Images start..start+count of the n that `opts` asks for, NHWC in [-1, 1], computed as one
 * batch from the model's tensors. Its noise stream is keyed by (seed, start), so the same batches
 * give the same images whoever computes them (a sampling thread or this one) and in any order. */
export async function generateBatch(model: UNetModel, tensors: tf.Tensor[], schedule: DiffusionSchedule, opts: GenerateOptions, start: number, count: number): Promise<Float32Array> {
  const { imageSize: size, imageChannels: channels } = model.config;
  let draw = 0;
  const noise = (shape: [number, number, number, number]) => {
    const rng = Rng.fromKey(opts.seed >>> 0, RngStream.sample, start, draw++);
    return tf.tensor4d(rng.gaussianFloat32(shape[0] * shape[1] * shape[2] * shape[3]), shape);
  };
  const labels = opts.labels?.subarray(start, start + count);
  const images = sample(schedule, denoiser(model, tensors, labels, opts.guidance ?? 1), [count, size, size, channels], { ...opts, noise });
  try {
    return (await images.data()) as Float32Array;
  } finally {
    images.dispose();
  }
}

/** Returns n images, NHWC in [-1, 1] (read asynchronously: webgpu has no synchronous read in Node),
 * in batches of `chunk`. The same seed and chunk give the same images on the same backend. */
export async function generateImages(model: UNetModel, params: Float32Array, schedule: DiffusionSchedule, opts: GenerateOptions): Promise<Float32Array> {
  const perImage = model.config.imageSize * model.config.imageSize * model.config.imageChannels;
  const out = new Float32Array(opts.n * perImage);
  checkLabels(opts);
  const tensors = model.tensorsFromFlat(params);
  const chunk = opts.chunk ?? DEFAULT_SAMPLE_BATCH;
  try {
    for (let start = 0; start < opts.n; start += chunk) {
      out.set(await generateBatch(model, tensors, schedule, opts, start, Math.min(chunk, opts.n - start)), start * perImage);
    }
  } finally {
    tf.dispose(tensors);
  }
  return out;
}

export function checkLabels(opts: { n: number; labels?: Uint8Array }): void {
  if (opts.labels !== undefined && opts.labels.length !== opts.n) throw new RangeError(`${opts.labels.length} labels for ${opts.n} images`);
}

/** What a training grid is drawn with (sampleGrids.ts). */
export interface GridOptions {
  n: number;
  sampler: SamplerName;
  steps: number;
  prediction: PredictionTarget;
  guidance: number;
}

/** A training grid's images: image i from seed i + 1 alone, so that successive grids show the same
 * noise; the event loop gets a turn between images. */
export async function gridImages(model: UNetModel, weights: Float32Array, schedule: DiffusionSchedule, o: GridOptions): Promise<Float32Array> {
  const labels = gridLabels(model.config, o.n);
  const perImage = model.config.imageSize * model.config.imageSize * model.config.imageChannels;
  const images = new Float32Array(o.n * perImage);
  for (let i = 0; i < o.n; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    images.set(await generateImages(model, weights, schedule, {
      n: 1, seed: i + 1, sampler: o.sampler, steps: o.steps, eta: 0, prediction: o.prediction, labels: labels?.subarray(i, i + 1), guidance: o.guidance,
    }), i * perImage);
  }
  return images;
}
