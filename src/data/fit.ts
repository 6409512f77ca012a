/**
 * Brings images to the model's square size and channel count, once, at load time.
 *
 * Non-square images are centre-cropped to a square first (`crop`, the default: the middle
 * min(h, w) x min(h, w) pixels, as torchvision's Resize + CenterCrop and diffusers' training
 * scripts frame them), or stretched (`stretch`, what runs before --image-fit did). Then, per axis:
 *  - same length: copied;
 *  - shrinking by an integer factor k: area average of each k-pixel block (no aliasing,
 *    and for k = 2 it equals bilinear with half-pixel centres);
 *  - anything else: bilinear with half-pixel centres (as PIL and tf.image.resize),
 *    clamped at the edges.
 * Channels: 1 -> 3 replicates grey; 3 -> 1 is ITU-R BT.601 luma. Values are rounded once, after
 * both steps.
 */
import type { ImageDataset } from './types';
import { DataError } from './types';

const LUMA_WEIGHTS = [0.299, 0.587, 0.114] as const;

export const IMAGE_FITS = ['crop', 'stretch'] as const;
export type ImageFit = (typeof IMAGE_FITS)[number];

export function isImageFit(name: string): name is ImageFit {
  return (IMAGE_FITS as readonly string[]).includes(name);
}

/** What images are fitted to: the model's --image-size and --image-channels, and --image-fit. */
export interface FitTarget {
  size: number;
  channels: number;
  mode: ImageFit;
}

/** Source indices and weights that make up one output coordinate along one axis. */
interface AxisTaps {
  index: number[];
  weight: number[];
}

export function checkFitTarget(t: FitTarget): void {
  if (!Number.isInteger(t.size) || t.size < 1) throw new RangeError(`fit: size must be a positive integer, got ${t.size}`);
  // The model's --image-channels: a user's choice, reported as theirs.
  if (t.channels !== 1 && t.channels !== 3) throw new DataError(`--image-channels ${t.channels}: images can be fitted to 1 (grey) or 3 (RGB) channels`);
}

/** Fits images of one size and channel count (height x width x inChannels) to a target. */
export class ImageFitter {
  private readonly rows: AxisTaps[];
  private readonly cols: AxisTaps[];

  constructor(readonly height: number, readonly width: number, private readonly inChannels: number, private readonly target: FitTarget) {
    const side = target.mode === 'crop' ? Math.min(height, width) : undefined;
    this.rows = axisTaps(height, target.size, side);
    this.cols = axisTaps(width, target.size, side);
  }

  /** Writes the image at src[srcOffset..] (HWC) fitted into out[outOffset..]. */
  fit(src: Uint8Array, srcOffset: number, out: Uint8Array, outOffset: number): void {
    const { size, channels } = this.target;
    const inChannels = this.inChannels;
    const resampled = new Float64Array(inChannels);
    for (let y = 0; y < size; y++) {
      const yTaps = this.rows[y];
      for (let x = 0; x < size; x++) {
        const xTaps = this.cols[x];
        resampled.fill(0);
        for (let i = 0; i < yTaps.index.length; i++) {
          const rowBase = srcOffset + yTaps.index[i] * this.width * inChannels;
          for (let j = 0; j < xTaps.index.length; j++) {
            const w = yTaps.weight[i] * xTaps.weight[j];
            const p = rowBase + xTaps.index[j] * inChannels;
            for (let c = 0; c < inChannels; c++) resampled[c] += w * src[p + c];
          }
        }
        writePixel(resampled, out, outOffset + (y * size + x) * channels, channels);
      }
    }
  }
}

/** The dataset fitted to `size` x `size` x `channels` (itself when it already is); `fittedFrom`
 * then says what it was. */
export function fitDataset(ds: ImageDataset, size: number, channels: number, mode: ImageFit = 'crop'): ImageDataset {
  const target = { size, channels, mode };
  checkFitTarget(target);
  if (ds.channels !== 1 && ds.channels !== 3) {
    throw new RangeError(`fitDataset: ${ds.source} has ${ds.channels} channels, only 1 or 3 can be converted`);
  }
  const expectedLength = ds.count * ds.height * ds.width * ds.channels;
  if (ds.pixels.length !== expectedLength) {
    throw new RangeError(
      `fitDataset: ${ds.source} has ${ds.pixels.length} pixel bytes, expected ${expectedLength} for ${ds.count}x${ds.height}x${ds.width}x${ds.channels}`,
    );
  }
  if (ds.height === size && ds.width === size && ds.channels === channels) return ds;
  const fitter = new ImageFitter(ds.height, ds.width, ds.channels, target);
  const inImage = ds.height * ds.width * ds.channels;
  const outImage = size * size * channels;
  const pixels = new Uint8Array(ds.count * outImage);
  for (let n = 0; n < ds.count; n++) fitter.fit(ds.pixels, n * inImage, pixels, n * outImage);
  return { ...ds, height: size, width: size, channels, pixels, fittedFrom: fittedFrom(ds, mode) };
}

/** "28x28x1", and how a non-square size was made square. */
export function fittedFrom(ds: { height: number; width: number; channels: number }, mode: ImageFit): string {
  return `${ds.height}x${ds.width}x${ds.channels}${ds.height === ds.width ? '' : mode === 'crop' ? ', centre-cropped' : ', stretched'}`;
}

/** Converts one resampled pixel to the output channel count and stores it rounded. */
function writePixel(value: Float64Array, out: Uint8Array, offset: number, outChannels: number): void {
  if (value.length === outChannels) {
    for (let c = 0; c < outChannels; c++) out[offset + c] = toByte(value[c]);
  } else if (outChannels === 3) {
    out[offset] = out[offset + 1] = out[offset + 2] = toByte(value[0]);
  } else {
    out[offset] = toByte(LUMA_WEIGHTS[0] * value[0] + LUMA_WEIGHTS[1] * value[1] + LUMA_WEIGHTS[2] * value[2]);
  }
}

function toByte(value: number): number {
  return Math.min(255, Math.max(0, Math.round(value)));
}

/** Per output coordinate, the source pixels it reads and their weights (summing to 1): over the
 * whole axis, or over its middle `side` pixels (a centre crop; any odd pixel left over is dropped
 * at the far end). */
function axisTaps(fullLength: number, outLength: number, side = fullLength): AxisTaps[] {
  const inLength = Math.min(side, fullLength);
  const start = Math.floor((fullLength - inLength) / 2);
  const taps: AxisTaps[] = [];
  const scale = inLength / outLength;
  for (let o = 0; o < outLength; o++) {
    if (inLength === outLength) {
      taps.push({ index: [start + o], weight: [1] });
    } else if (inLength % outLength === 0) {
      const k = inLength / outLength;
      const index = Array.from({ length: k }, (_, i) => start + o * k + i);
      taps.push({ index, weight: index.map(() => 1 / k) });
    } else {
      // Centre of output pixel o in input coordinates, clamped so edges repeat.
      const at = Math.min(inLength - 1, Math.max(0, (o + 0.5) * scale - 0.5));
      const lo = Math.floor(at);
      const hi = Math.min(lo + 1, inLength - 1);
      const t = at - lo;
      taps.push({ index: [start + lo, start + hi], weight: [1 - t, t] });
    }
  }
  return taps;
}
