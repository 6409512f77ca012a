/**
 * The DDPM U-Net (Ho et al. 2020, Appendix B; diffusion_tf/models/unet.py) as a pure function of
 * a parameter map. Traversal order and names match paramSpecs.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UNetConfig, classCount, levelSizes } from './config';
import { Params, conv, dense, groupNorm, param, swish, upsampleNearest } from './layers';
import { BlockContext, resBlock } from './resBlock';
import { attnBlock } from './attention';
import { timestepEmbedding } from './timeEmbedding';
import { labelTensor, timestepTensor } from '../backend/stepInputs';

/** Row b has a 1 in column labels[b]. */
export function oneHotRows(labels: ArrayLike<number>, width: number): Float32Array {
  const out = new Float32Array(labels.length * width);
  for (let b = 0; b < labels.length; b++) {
    if (!(labels[b] < width)) throw new RangeError(`label ${labels[b]} is not below ${width}`);
    out[b * width + labels[b]] = 1;
  }
  return out;
}

export interface ForwardOptions {
  /** Enables dropout with masks derived from this seed (one per residual block); omit at inference. */
  dropoutSeed?: number;
  /** A class-conditional model's class per example; the value `classes` is "no class". */
  labels?: Uint8Array;
}

/** eps_theta(x_t, t): x is NHWC in [-1, 1]-ish scale, timesteps one integer per example. */
export function unetForward(config: UNetConfig, params: Params, x: tf.Tensor4D, timesteps: ArrayLike<number>, opts: ForwardOptions = {}): tf.Tensor4D {
  const ch = config.channels;
  const sizes = levelSizes(config);
  const last = config.channelMult.length - 1;
  let blockIndex = 0;
  const ctx = (): BlockContext => ({
    params,
    groups: config.normGroups,
    dropoutRate: config.dropout,
    dropoutSeed: opts.dropoutSeed,
    blockIndex: blockIndex++,
  });

  const embInput = timestepTensor<tf.Tensor2D>(timesteps, (t) => timestepEmbedding(t, ch), [timesteps.length, ch]);
  let temb = dense(params, 'temb/dense0', embInput) as tf.Tensor2D;
  temb = dense(params, 'temb/dense1', swish(temb)) as tf.Tensor2D;
  const classes = classCount(config);
  if (classes > 0) {
    // The class's row of the embedding table, as a one-hot product so that its gradient is a
    // matmul and the one-hot rows a unit tensor (a replayed webgpu step recomputes them).
    if (opts.labels === undefined || opts.labels.length !== timesteps.length) throw new Error(`a class-conditional U-Net needs one label per example`);
    const oneHot = labelTensor<tf.Tensor2D>(opts.labels, (labels) => oneHotRows(labels, classes + 1), [timesteps.length, classes + 1]);
    temb = tf.add(temb, tf.matMul(oneHot, param(params, 'class_emb/embedding') as tf.Tensor2D));
  }

  let h = conv(params, 'conv_in', x);
  const skips: tf.Tensor4D[] = [h];
  config.channelMult.forEach((mult, level) => {
    for (let i = 0; i < config.resBlocks; i++) {
      h = resBlock(ctx(), `down_${level}/block_${i}`, h, temb, ch * mult);
      if (config.attentionResolutions.includes(sizes[level])) h = attnBlock(params, `down_${level}/attn_${i}`, h, config.normGroups);
      skips.push(h);
    }
    if (level !== last) {
      h = conv(params, `down_${level}/downsample`, h, 2);
      skips.push(h);
    }
  });

  h = resBlock(ctx(), 'mid/block_1', h, temb, h.shape[3]);
  h = attnBlock(params, 'mid/attn_1', h, config.normGroups);
  h = resBlock(ctx(), 'mid/block_2', h, temb, h.shape[3]);

  for (let level = last; level >= 0; level--) {
    for (let i = 0; i < config.resBlocks + 1; i++) {
      const skip = skips.pop() as tf.Tensor4D;
      h = resBlock(ctx(), `up_${level}/block_${i}`, tf.concat([h, skip], 3), temb, ch * config.channelMult[level]);
      if (config.attentionResolutions.includes(sizes[level])) h = attnBlock(params, `up_${level}/attn_${i}`, h, config.normGroups);
    }
    if (level !== 0) {
      h = upsampleNearest(h, [sizes[level - 1], sizes[level - 1]]);
      h = conv(params, `up_${level}/upsample`, h);
    }
  }
  h = swish(groupNorm(params, 'norm_out', h, config.normGroups)) as tf.Tensor4D;
  return conv(params, 'conv_out', h);
}
