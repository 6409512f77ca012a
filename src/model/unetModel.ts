/** A U-Net bound to its configuration and a flat parameter vector (the form the wire carries). */
import * as tf from '@tensorflow/tfjs-core';
import { UNetConfig } from './config';
import { ParamSpec, paramSize, unetParamSpecs } from './paramSpecs';
import { Params } from './layers';
import { ForwardOptions, unetForward } from './unet';
import { InitOptions, initParams } from './init';
import { ReadTarget, readInto } from '../backend/readBack';

export class UNetModel {
  readonly specs: ParamSpec[];
  readonly offsets: number[];
  readonly size: number;

  constructor(readonly config: UNetConfig) {
    this.specs = unetParamSpecs(config);
    this.offsets = [];
    let offset = 0;
    for (const s of this.specs) {
      this.offsets.push(offset);
      offset += paramSize(s.shape);
    }
    this.size = offset;
  }

  /** The initial parameters (init.ts) as one flat vector. */
  initialParams(seed: number, opts: InitOptions = {}): Float32Array {
    const flat = new Float32Array(this.size);
    initParams(this.specs, seed, opts).forEach((values, i) => flat.set(values, this.offsets[i]));
    return flat;
  }

  /** One tensor per parameter, copied out of the flat vector. */
  tensorsFromFlat(flat: Float32Array): tf.Tensor[] {
    return this.flatViews(flat).map((values, i) => tf.tensor(values, this.specs[i].shape, 'float32'));
  }

  paramMap(tensors: readonly tf.Tensor[]): Params {
    const map: Record<string, tf.Tensor> = {};
    this.specs.forEach((s, i) => { map[s.name] = tensors[i]; });
    return map;
  }

  forward(tensors: readonly tf.Tensor[], x: tf.Tensor4D, timesteps: ArrayLike<number>, opts?: ForwardOptions): tf.Tensor4D {
    return unetForward(this.config, this.paramMap(tensors), x, timesteps, opts);
  }

  /** Where each parameter's tensor goes in the flat vector `out`, for readInto. */
  flatTargets(tensors: readonly tf.Tensor[], out: Float32Array): ReadTarget[] {
    const views = this.flatViews(out);
    return tensors.map((tensor, i) => ({ tensor, out: views[i] }));
  }

  /** Each parameter's part of a flat vector (a view, not a copy). */
  flatViews(flat: Float32Array): Float32Array[] {
    if (flat.length !== this.size) throw new RangeError(`parameter vector has ${flat.length} values, model needs ${this.size}`);
    return this.specs.map((s, i) => flat.subarray(this.offsets[i], this.offsets[i] + paramSize(s.shape)));
  }

  /** Copies per-parameter gradients (or values) into one flat vector. Reads asynchronously:
   * webgpu has no synchronous read in Node; there all of them come back in one round trip. */
  async flatten(tensors: readonly tf.Tensor[], out = new Float32Array(this.size)): Promise<Float32Array> {
    await readInto(this.flatTargets(tensors, out));
    return out;
  }
}
