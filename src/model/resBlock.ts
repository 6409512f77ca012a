/** Residual block of the DDPM reference code: GroupNorm, swish, conv, + projected time embedding,
 * GroupNorm, swish, dropout, conv, with a 1x1 ("nin") shortcut when the channel count changes. */
import * as tf from '@tensorflow/tfjs-core';
import { Params, conv, dense, dropout, groupNormSwish, nin, swish } from './layers';

export interface BlockContext {
  params: Params;
  groups: number;
  dropoutRate: number;
  /** The unit's dropout seed; undefined at inference. */
  dropoutSeed: number | undefined;
  /** This block's index among the U-Net's residual blocks: its mask's seed is hashKey(dropoutSeed, index). */
  blockIndex: number;
}

export function resBlock(ctx: BlockContext, prefix: string, x: tf.Tensor4D, temb: tf.Tensor2D, outCh: number): tf.Tensor4D {
  const { params, groups } = ctx;
  const inCh = x.shape[3];
  let h = groupNormSwish(params, `${prefix}/norm1`, x, groups);
  h = conv(params, `${prefix}/conv1`, h);
  const t = dense(params, `${prefix}/temb_proj`, swish(temb));
  h = tf.add(h, tf.reshape(t, [t.shape[0], 1, 1, outCh]));
  h = groupNormSwish(params, `${prefix}/norm2`, h, groups);
  h = dropout(h, ctx.dropoutRate, ctx.dropoutSeed, ctx.blockIndex);
  h = conv(params, `${prefix}/conv2`, h);
  const shortcut = inCh === outCh ? x : nin(params, `${prefix}/nin_shortcut`, x);
  return tf.add(shortcut, h);
}
