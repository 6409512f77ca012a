/**
 * Brings a dataset to the model's square size and channel count, once, at load time.
 *
 * Resampling, per axis:
 *  - same length: copied;
 *  - shrinking by an integer factor k: area average of each k-pixel block (no aliasing,
 *    and for k = 2 it equals bilinear with half-pixel centres);
 *  - anything else: bilinear with half-pixel centres (as PIL and tf.image.resize),
 *    clamped at the edges.
 * Non-square images are stretched, not cropped. Channels: 1 -> 3 replicates grey;
 * 3 -> 1 is ITU-R BT.601 luma. Values are rounded once, after both steps.
 */
import type { ImageDataset } from './types';
import { DataError } from './types';

const LUMA_WEIGHTS = [0.299, 0.587, 0.114] as const;

/** Source indices and weights that make up one output coordinate along one axis. */
interface AxisTaps {
  index: number[];
  weight: number[];
}

export function fitDataset(ds: ImageDataset, size: number, channels: number): ImageDataset {
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`fitDataset: size must be a positive integer, got ${size}`);
  }
  if (channels !== 1 && channels !== 3) {
    // The model's --image-channels: a user's choice, reported as theirs.
    throw new DataError(`--image-channels ${channels}: images can be fitted to 1 (grey) or 3 (RGB) channels`);
  }
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

  const rows = axisTaps(ds.height, size);
  const cols = axisTaps(ds.width, size);
  const inChannels = ds.channels;
  const inImage = ds.height * ds.width * inChannels;
  const outImage = size * size * channels;
  const pixels = new Uint8Array(ds.count * outImage);
  const resampled = new Float64Array(inChannels);

  for (let n = 0; n < ds.count; n++) {
    const inBase = n * inImage;
    for (let y = 0; y < size; y++) {
      const yTaps = rows[y];
      for (let x = 0; x < size; x++) {
        const xTaps = cols[x];
        resampled.fill(0);
        for (let i = 0; i < yTaps.index.length; i++) {
          const rowBase = inBase + yTaps.index[i] * ds.width * inChannels;
          for (let j = 0; j < xTaps.index.length; j++) {
            const w = yTaps.weight[i] * xTaps.weight[j];
            const p = rowBase + xTaps.index[j] * inChannels;
            for (let c = 0; c < inChannels; c++) resampled[c] += w * ds.pixels[p + c];
          }
        }
        writePixel(resampled, pixels, n * outImage + (y * size + x) * channels, channels);
      }
    }
  }
  return { ...ds, height: size, width: size, channels, pixels };
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

/** Per output coordinate, the source pixels it reads and their weights (summing to 1). */
function axisTaps(inLength: number, outLength: number): AxisTaps[] {
  const taps: AxisTaps[] = [];
  const scale = inLength / outLength;
  for (let o = 0; o < outLength; o++) {
    if (inLength === outLength) {
      taps.push({ index: [o], weight: [1] });
    } else if (inLength % outLength === 0) {
      const k = inLength / outLength;
      const index = Array.from({ length: k }, (_, i) => o * k + i);
      taps.push({ index, weight: index.map(() => 1 / k) });
    } else {
      // Centre of output pixel o in input coordinates, clamped so edges repeat.
      const at = Math.min(inLength - 1, Math.max(0, (o + 0.5) * scale - 0.5));
      const lo = Math.floor(at);
      const hi = Math.min(lo + 1, inLength - 1);
      const t = at - lo;
      taps.push({ index: [lo, hi], weight: [1 - t, t] });
    }
  }
  return taps;
}
