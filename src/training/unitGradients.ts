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
import { sameBytes } from '../util/sameBytes';
import { LOSS_BUCKETS, UnitResult, WorkUnit, bucketOf } from './workUnit';
import { StepReplay } from '../backend/webgpu/stepReplay';
import type { ReplayInputs } from '../backend/webgpu/stepGraph';
import type { StepRecorder, StepRecording } from '../backend/webgpu/stepRecording';

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

/** A unit's x_0 and eps, made on the host. */
interface HostInputs {
  images: Float32Array;
  noise: Float32Array;
}

export class UnitGradientComputer {
  private params: tf.Tensor[] = [];
  private paramViews: Float32Array[] = [];
  private version = -1;
  /** On webgpu, steps replayed without tfjs once learnt (backend/webgpu/stepReplay.ts). */
  private readonly replay = StepReplay.forBackend();
  /** Host time of the last compute until its last kernel was issued (the rest waited for the
   * device and read back): on a GPU, whether a step is bound by the host or by the device. */
  lastIssueSeconds = 0;
  /** Of that, the host time making the unit's images and noise (0 when prepare() made them). */
  lastInputSeconds = 0;
  private prepared: { unit: WorkUnit; images: Float32Array; noise: Float32Array } | undefined;
  /** Units computed from images and noise that prepare() made. */
  unitsFromPrepared = 0;

  constructor(readonly model: UNetModel, readonly schedule: DiffusionSchedule, readonly objective: Objective) {}

  get paramVersion(): number {
    return this.version;
  }

  /** Which unit sizes are replayed on webgpu, and why others are not; undefined elsewhere. */
  get replayStatus(): string | undefined {
    return this.replay?.describe();
  }

  setParams(flat: Float32Array, version: number): void {
    const next = this.model.tensorsFromFlat(flat);
    tf.dispose(this.params);
    this.params = next;
    this.paramViews = this.model.flatViews(flat);
    this.version = version;
  }

  /**
   * Makes the images and noise of the unit to be computed next (the host's part of a step that
   * comes before any kernel), so that the caller can do it while the device computes this one.
   */
  prepare(unit: WorkUnit): void {
    this.prepared = { unit, ...this.hostInputs(unit) };
  }

  async compute(unit: WorkUnit): Promise<UnitResult> {
    if (this.version < 0) throw new Error('no parameters set');
    // Parameters may be replaced while this unit's results are read back; the result names
    // the version its gradients came from.
    const paramVersion = this.version;
    const paramViews = this.paramViews;
    const started = process.hrtime.bigint();
    const issued = () => { this.lastIssueSeconds = Number(process.hrtime.bigint() - started) / 1e9; };
    const gradSum = new Float32Array(this.model.size);
    const losses = new Float32Array(unit.count);
    const prepared = this.prepared?.unit === unit ? this.prepared : undefined;
    const inputs = prepared ?? this.hostInputs(unit);
    if (prepared !== undefined) this.unitsFromPrepared++;
    this.prepared = undefined;
    this.lastInputSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const graph = this.replay?.graph(unit.count);
    if (graph !== undefined) {
      await graph.run(replayInputs(unit, inputs, paramViews), [...this.model.flatViews(gradSum), losses], issued);
    } else {
      const recorder = this.replay?.recorder(unit.count, this.params, unit);
      const recording = await this.eager(unit, inputs, gradSum, losses, issued, recorder);
      if (recorder !== undefined) {
        await this.replay?.learn(unit.count, recording, recorder.problem, async (learnt) => {
          const replayed = new Float32Array(this.model.size);
          const replayedLosses = new Float32Array(unit.count);
          await learnt.run(replayInputs(unit, inputs, paramViews), [...this.model.flatViews(replayed), replayedLosses]);
          return sameBytes(replayed, gradSum) && sameBytes(replayedLosses, losses);
        });
      }
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
    this.paramViews = [];
    this.version = -1;
    this.replay?.dispose();
  }

  /** The step through tfjs: the gradient into gradSum, the per-example losses into losses. */
  private async eager(unit: WorkUnit, inputs: HostInputs, gradSum: Float32Array, losses: Float32Array, issued: () => void, recorder?: StepRecorder): Promise<StepRecording | undefined> {
    const { imageSize: size, imageChannels: channels } = this.model.config;
    const shape: [number, number, number, number] = [unit.count, size, size, channels];
    let perExample: tf.Tensor1D | undefined;
    let recording: StepRecording | undefined;
    let grads: tf.Tensor[] = [];
    try {
      grads = tf.tidy(() => {
        const x0 = tf.tensor4d(inputs.images, shape);
        const noise = tf.tensor4d(inputs.noise, shape);
        recorder?.nameInput(x0, 'x0');
        recorder?.nameInput(noise, 'noise');
        const lossOf = (...params: tf.Tensor[]) => {
          const perExampleLosses = perExampleLoss(this.schedule, (xt, t) => this.model.forward(params, xt, t, { dropoutSeed: unit.dropoutSeed, labels: unit.labels }), x0, unit.timesteps, noise, this.objective);
          perExample = tf.keep(perExampleLosses);
          return tf.sum(perExampleLosses) as tf.Scalar;
        };
        return tf.grads(lossOf)(this.params);
      });
      recording = recorder?.stop([...grads, perExample as tf.Tensor1D]);
    } finally {
      recorder?.end();
    }
    issued();
    const lossTensor = perExample as unknown as tf.Tensor1D;
    try {
      // One read for everything (on webgpu one GPU round trip, not one per tensor).
      await readInto([...this.model.flatTargets(grads, gradSum), { tensor: lossTensor, out: losses }]);
    } finally {
      tf.dispose([...grads, lossTensor]);
    }
    return recording;
  }

  private hostInputs(unit: WorkUnit): HostInputs {
    const { imageSize: size, imageChannels: channels } = this.model.config;
    return { images: unitImages(unit, size, channels), noise: unitNoise(unit, size * size * channels) };
  }

}

/** What a replayed step reads: the unit, its images and noise, and the parameters it started with. */
function replayInputs(unit: WorkUnit, inputs: HostInputs, params: Float32Array[]): ReplayInputs {
  return { named: new Map([['x0', inputs.images], ['noise', inputs.noise]]), unit, params };
}
