/**
 * Tensors of per-example values that are a function of a training step's timesteps alone: the
 * noising coefficients of Eq. 4, the timestep embedding, Min-SNR weights. Made through here, a
 * recorded webgpu step (webgpu/stepRecording.ts) knows how to recompute them for another unit's
 * timesteps when it replays the step without tfjs. `values` must read nothing but its argument and
 * constants (the schedule, the embedding's width).
 */
import * as tf from '@tensorflow/tfjs-core';

export type TimestepValues = (timesteps: ArrayLike<number>) => Float32Array;

type Observer = (tensor: tf.Tensor, timesteps: ArrayLike<number>, values: TimestepValues) => void;

let observer: Observer | undefined;

export function timestepTensor<T extends tf.Tensor>(timesteps: ArrayLike<number>, values: TimestepValues, shape: number[]): T {
  const tensor = tf.tensor(values(timesteps), shape, 'float32') as T;
  observer?.(tensor, timesteps, values);
  return tensor;
}

/** Sees every timestepTensor made until called again (with undefined: none). One at a time. */
export function observeTimestepTensors(next: Observer | undefined): void {
  if (next !== undefined && observer !== undefined) throw new Error('timestep tensors are observed already');
  observer = next;
}
