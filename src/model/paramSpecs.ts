/**
 * The U-Net's parameters as (name, shape, init) triples, in a fixed order. Pure: the parameter
 * count, checkpoints and the wire protocol use this list without building the model.
 */
import { UNetConfig, classCount, levelSizes } from './config';

/** 'fanAvg': DDPM's default_init (variance scaling, fan_avg, uniform); 'zero': the reference's
 * near-zero init of the last conv of each block, the attention output and the final conv. */
export type ParamInit = 'fanAvg' | 'zero' | 'ones';

export interface ParamSpec {
  name: string;
  shape: number[];
  init: ParamInit;
}

export function paramSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

class SpecBuilder {
  readonly specs: ParamSpec[] = [];
  add(name: string, shape: number[], init: ParamInit): void {
    this.specs.push({ name, shape, init });
  }
  norm(prefix: string, ch: number): void {
    this.add(`${prefix}/gamma`, [ch], 'ones');
    this.add(`${prefix}/beta`, [ch], 'zero');
  }
  conv(prefix: string, k: number, cin: number, cout: number, init: ParamInit = 'fanAvg'): void {
    this.add(`${prefix}/kernel`, [k, k, cin, cout], init);
    this.add(`${prefix}/bias`, [cout], 'zero');
  }
  dense(prefix: string, cin: number, cout: number, init: ParamInit = 'fanAvg'): void {
    this.add(`${prefix}/kernel`, [cin, cout], init);
    this.add(`${prefix}/bias`, [cout], 'zero');
  }
  resBlock(prefix: string, cin: number, cout: number, tembCh: number): void {
    this.norm(`${prefix}/norm1`, cin);
    this.conv(`${prefix}/conv1`, 3, cin, cout);
    this.dense(`${prefix}/temb_proj`, tembCh, cout);
    this.norm(`${prefix}/norm2`, cout);
    this.conv(`${prefix}/conv2`, 3, cout, cout, 'zero');
    if (cin !== cout) this.dense(`${prefix}/nin_shortcut`, cin, cout);
  }
  attnBlock(prefix: string, ch: number): void {
    this.norm(`${prefix}/norm`, ch);
    this.dense(`${prefix}/q`, ch, ch);
    this.dense(`${prefix}/k`, ch, ch);
    this.dense(`${prefix}/v`, ch, ch);
    this.dense(`${prefix}/proj_out`, ch, ch, 'zero');
  }
}

/** Mirrors unet.ts's traversal exactly; a test checks the two agree. */
export function unetParamSpecs(c: UNetConfig): ParamSpec[] {
  const b = new SpecBuilder();
  const ch = c.channels;
  const tembCh = 4 * ch;
  const sizes = levelSizes(c);
  b.dense('temb/dense0', ch, tembCh);
  b.dense('temb/dense1', tembCh, tembCh);
  if (classCount(c) > 0) b.add('class_emb/embedding', [classCount(c) + 1, tembCh], 'fanAvg');
  b.conv('conv_in', 3, c.imageChannels, ch);
  const skipChannels = [ch];
  let cur = ch;
  c.channelMult.forEach((mult, level) => {
    const out = ch * mult;
    for (let i = 0; i < c.resBlocks; i++) {
      b.resBlock(`down_${level}/block_${i}`, cur, out, tembCh);
      cur = out;
      if (c.attentionResolutions.includes(sizes[level])) b.attnBlock(`down_${level}/attn_${i}`, cur);
      skipChannels.push(cur);
    }
    if (level !== c.channelMult.length - 1) {
      b.conv(`down_${level}/downsample`, 3, cur, cur);
      skipChannels.push(cur);
    }
  });
  b.resBlock('mid/block_1', cur, cur, tembCh);
  b.attnBlock('mid/attn_1', cur);
  b.resBlock('mid/block_2', cur, cur, tembCh);
  for (let level = c.channelMult.length - 1; level >= 0; level--) {
    const out = ch * c.channelMult[level];
    for (let i = 0; i < c.resBlocks + 1; i++) {
      const skip = skipChannels.pop() as number;
      b.resBlock(`up_${level}/block_${i}`, cur + skip, out, tembCh);
      cur = out;
      if (c.attentionResolutions.includes(sizes[level])) b.attnBlock(`up_${level}/attn_${i}`, cur);
    }
    if (level !== 0) b.conv(`up_${level}/upsample`, 3, cur, cur);
  }
  b.norm('norm_out', cur);
  b.conv('conv_out', 3, cur, c.imageChannels, 'zero');
  return b.specs;
}

export function parameterCount(c: UNetConfig): number {
  return unetParamSpecs(c).reduce((n, s) => n + paramSize(s.shape), 0);
}
