/**
 * Tensors of a training step's values that are a function of its work unit alone: of its
 * timesteps (the noising coefficients of Eq. 4, the timestep embedding, Min-SNR weights) or of
 * its dropout seed (each residual block's mask seed), or of its labels (a conditional model's
 * one-hot class rows). Made through here, a recorded webgpu step
 * (webgpu/stepRecording.ts) knows how to recompute them for another unit when it replays the step
 * without tfjs. `values` must read nothing but its argument and constants (the schedule, a width,
 * a block's index).
 */
import * as tf from '@tensorflow/tfjs-core';

/** What of a unit such values may depend on. */
export interface UnitKeys {
  timesteps: ArrayLike<number>;
  dropoutSeed: number;
  /** A class-conditional model's labels (WorkUnit.labels). */
  labels?: Uint8Array;
}

export type UnitValues = (unit: UnitKeys) => Float32Array | Int32Array;

export type UnitKeyUse = { key: 'timesteps'; given: ArrayLike<number> } | { key: 'dropoutSeed'; given: number } | { key: 'labels'; given: Uint8Array };

type Observer = (tensor: tf.Tensor, use: UnitKeyUse, values: UnitValues) => void;

let observer: Observer | undefined;

/** A float32 tensor of values(timesteps). */
export function timestepTensor<T extends tf.Tensor>(timesteps: ArrayLike<number>, values: (timesteps: ArrayLike<number>) => Float32Array, shape: number[]): T {
  const tensor = tf.tensor(values(timesteps), shape, 'float32') as T;
  observer?.(tensor, { key: 'timesteps', given: timesteps }, (unit) => values(unit.timesteps));
  return tensor;
}

/** A float32 tensor of values(the unit's labels). */
export function labelTensor<T extends tf.Tensor>(labels: Uint8Array, values: (labels: Uint8Array) => Float32Array, shape: number[]): T {
  const tensor = tf.tensor(values(labels), shape, 'float32') as T;
  observer?.(tensor, { key: 'labels', given: labels }, (unit) => {
    if (unit.labels === undefined) throw new Error('a unit without labels replayed on a class-conditional step');
    return values(unit.labels);
  });
  return tensor;
}

/** An int32 tensor of values(the unit's dropout seed). */
export function dropoutSeedTensor(seed: number, values: (seed: number) => Int32Array, shape: number[]): tf.Tensor {
  const tensor = tf.tensor(values(seed), shape, 'int32');
  observer?.(tensor, { key: 'dropoutSeed', given: seed }, (unit) => values(unit.dropoutSeed));
  return tensor;
}

/** Sees every such tensor made until called again (with undefined: none). One at a time. */
export function observeUnitTensors(next: Observer | undefined): void {
  if (next !== undefined && observer !== undefined) throw new Error('unit tensors are observed already');
  observer = next;
}
