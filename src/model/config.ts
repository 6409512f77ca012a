/**
 * U-Net hyper-parameters and presets. The architecture follows the DDPM reference code
 * (Ho et al. 2020, diffusion_tf/models/unet.py); see unet.ts.
 */

export interface UNetConfig {
  imageSize: number;
  imageChannels: number;
  channels: number;
  channelMult: number[];
  resBlocks: number;
  /** Spatial sizes (e.g. 16 for 16x16) at which self-attention follows each residual block. */
  attentionResolutions: number[];
  dropout: number;
  /** GroupNorm groups; every channel count in the network must be divisible by it. */
  normGroups: number;
  /** Class-conditional: a learned embedding of each example's class (one row per class plus a
   * "no class" row, for classifier-free guidance) added to the timestep embedding. 0 or absent:
   * unconditional, the DDPM paper's model. */
  classes?: number;
}

/** The classes of a conditional model, 0 for an unconditional one. */
export function classCount(c: UNetConfig): number {
  return c.classes ?? 0;
}

export const PRESET_NAMES = ['tiny', 'mnist-fast', 'mnist', 'cifar10'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export const PRESETS: Record<PresetName, UNetConfig> = {
  // For tests: two levels, attention at 4x4 and in the middle, all code paths, 44,969 parameters.
  tiny: { imageSize: 8, imageChannels: 1, channels: 8, channelMult: [1, 2], resBlocks: 1, attentionResolutions: [4], dropout: 0, normGroups: 4 },
  // The 10-minute CPU demo: MNIST digits fitted to 14x14, a quarter of the pixels of 28x28 (README).
  'mnist-fast': { imageSize: 14, imageChannels: 1, channels: 16, channelMult: [1, 2, 2], resBlocks: 2, attentionResolutions: [], dropout: 0, normGroups: 8 },
  // PERFORMANCE.md's calibration: small and fast beats large and slow on a 10-minute CPU budget.
  mnist: { imageSize: 28, imageChannels: 1, channels: 16, channelMult: [1, 2, 2], resBlocks: 2, attentionResolutions: [], dropout: 0, normGroups: 8 },
  // The DDPM paper's CIFAR-10 model (35.7M parameters).
  cifar10: { imageSize: 32, imageChannels: 3, channels: 128, channelMult: [1, 2, 2, 2], resBlocks: 2, attentionResolutions: [16], dropout: 0.1, normGroups: 32 },
};

export class InvalidModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidModelConfigError';
  }
}

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}

export function presetConfig(name: string): UNetConfig {
  if (!isPresetName(name)) throw new InvalidModelConfigError(`unknown model preset "${name}" (allowed: ${PRESET_NAMES.join(', ')})`);
  const p = PRESETS[name];
  return { ...p, channelMult: [...p.channelMult], attentionResolutions: [...p.attentionResolutions] };
}

/** Spatial size at each level: SAME-padded stride-2 convs give ceil(size / 2). */
export function levelSizes(config: UNetConfig): number[] {
  const sizes: number[] = [];
  let s = config.imageSize;
  for (let i = 0; i < config.channelMult.length; i++) {
    sizes.push(s);
    s = Math.ceil(s / 2);
  }
  return sizes;
}

export function validateConfig(c: UNetConfig): UNetConfig {
  const positiveInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < 1) throw new InvalidModelConfigError(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt(c.imageSize, 'image-size');
  positiveInt(c.imageChannels, 'image-channels');
  positiveInt(c.channels, 'channels');
  positiveInt(c.resBlocks, 'res-blocks');
  positiveInt(c.normGroups, 'norm-groups');
  if (c.channelMult.length === 0) throw new InvalidModelConfigError('channel-mult must list at least one multiplier');
  c.channelMult.forEach((m) => positiveInt(m, 'channel-mult entry'));
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new InvalidModelConfigError(`dropout must be in [0, 1), got ${c.dropout}`);
  const classes = classCount(c);
  // Labels travel as uint8 with the value `classes` meaning "no class".
  if (!Number.isInteger(classes) || classes < 0 || classes > 255) throw new InvalidModelConfigError(`classes must be an integer in [0, 255], got ${classes}`);
  const sizes = levelSizes(c);
  for (const r of c.attentionResolutions) {
    if (!sizes.includes(r)) {
      throw new InvalidModelConfigError(`attention resolution ${r} is not a level size of this U-Net (levels: ${sizes.join(', ')})`);
    }
  }
  for (const m of c.channelMult) {
    if ((c.channels * m) % c.normGroups !== 0) {
      throw new InvalidModelConfigError(`channels ${c.channels * m} not divisible by norm-groups ${c.normGroups}`);
    }
  }
  return c;
}
