/**
 * The worker's computation: for one work unit, the sum over its examples of the gradient of the
 * per-example loss, with the loss sums. Every worker, in-process or remote, runs this code.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UNetModel } from '../model/unetModel';
import { DiffusionSchedule } from '../schedule';
import { perExampleLoss } from '../diffusion/forward';
import type { Objective } from '../diffusion/types';
import { Rng } from '../rng/rng';
import { readInto } from '../backend/readBack';
import { LOSS_BUCKETS, UnitResult, WorkUnit, bucketOf } from './workUnit';

/** x_0 in [-1, 1] from uint8 pixels, flipped horizontally where asked (proto/README.md). */
export function unitImages(unit: WorkUnit, size: number, channels: number): Float32Array {
  const perImage = size * size * channels;
  const out = new Float32Array(unit.count * perImage);
  for (let n = 0; n < unit.count; n++) {
    const base = n * perImage;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const srcX = unit.flips[n] ? size - 1 - x : x;
        for (let c = 0; c < channels; c++) {
          out[base + (y * size + x) * channels + c] = unit.pixels[base + (y * size + srcX) * channels + c] / 127.5 - 1;
        }
      }
    }
  }
  return out;
}

/** eps for each example from its noise seed: Rng(seed).gaussianFloat32(H*W*C) (proto/README.md). */
export function unitNoise(unit: WorkUnit, perImage: number): Float32Array {
  const out = new Float32Array(unit.count * perImage);
  for (let n = 0; n < unit.count; n++) new Rng(unit.noiseSeeds[n]).gaussianFloat32(perImage, out.subarray(n * perImage, (n + 1) * perImage));
  return out;
}

export class UnitGradientComputer {
  private params: tf.Tensor[] = [];
  private version = -1;
  /** Host time of the last compute until its last kernel was issued (the rest waited for the
   * device and read back): on a GPU, whether a step is bound by the host or by the device. */
  lastIssueSeconds = 0;

  constructor(readonly model: UNetModel, readonly schedule: DiffusionSchedule, readonly objective: Objective) {}

  get paramVersion(): number {
    return this.version;
  }

  setParams(flat: Float32Array, version: number): void {
    const next = this.model.tensorsFromFlat(flat);
    tf.dispose(this.params);
    this.params = next;
    this.version = version;
  }

  async compute(unit: WorkUnit): Promise<UnitResult> {
    if (this.version < 0) throw new Error('no parameters set');
    // Parameters may be replaced while this unit's results are read back; the result names
    // the version its gradients came from.
    const paramVersion = this.version;
    const started = process.hrtime.bigint();
    const { imageSize: size, imageChannels: channels } = this.model.config;
    const perImage = size * size * channels;
    const shape: [number, number, number, number] = [unit.count, size, size, channels];
    let perExample: tf.Tensor1D | undefined;
    const grads = tf.tidy(() => {
      const x0 = tf.tensor4d(unitImages(unit, size, channels), shape);
      const noise = tf.tensor4d(unitNoise(unit, perImage), shape);
      const lossOf = (...params: tf.Tensor[]) => {
        const losses = perExampleLoss(this.schedule, (xt, t) => this.model.forward(params, xt, t, { dropoutSeed: unit.dropoutSeed }), x0, unit.timesteps, noise, this.objective);
        perExample = tf.keep(losses);
        return tf.sum(losses) as tf.Scalar;
      };
      return tf.grads(lossOf)(this.params);
    });
    const lossTensor = perExample as unknown as tf.Tensor1D;
    this.lastIssueSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const gradSum = new Float32Array(this.model.size);
    const losses = new Float32Array(unit.count);
    try {
      // One read for everything (on webgpu one GPU round trip, not one per tensor).
      await readInto([...this.model.flatTargets(grads, gradSum), { tensor: lossTensor, out: losses }]);
    } finally {
      tf.dispose([...grads, lossTensor]);
    }
    const lossByBucket = new Float64Array(LOSS_BUCKETS);
    const countByBucket = new Float64Array(LOSS_BUCKETS);
    let lossSum = 0;
    for (let i = 0; i < unit.count; i++) {
      const b = bucketOf(unit.timesteps[i], this.schedule.timesteps);
      lossSum += losses[i];
      lossByBucket[b] += losses[i];
      countByBucket[b] += 1;
    }
    return {
      step: unit.step, unitId: unit.unitId, paramVersion, count: unit.count, lossSum, lossByBucket, countByBucket, gradSum,
      computeSeconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  }

  dispose(): void {
    tf.dispose(this.params);
    this.params = [];
    this.version = -1;
  }
}
