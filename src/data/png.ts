/** Image output: PNG encoding and sample grids. */
import { PNG } from 'pngjs';

/** PNG colour types 0 (grey) and 2 (RGB), by channel count. */
const COLOR_TYPE_BY_CHANNELS = { 1: 0, 3: 2 } as const;

/** 8-bit grey or RGB PNG from packed row-major pixels (HWC). */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`encodePng: width and height must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new RangeError(`encodePng: channels must be 1 or 3, got ${String(channels)}`);
  }
  const expected = width * height * channels;
  if (pixels.length !== expected) {
    throw new RangeError(`encodePng: expected ${expected} bytes for ${width}x${height}x${channels}, got ${pixels.length}`);
  }
  const colorType = COLOR_TYPE_BY_CHANNELS[channels];
  const png = new PNG({ width, height });
  // With inputColorType equal to colorType, pngjs packs the buffer as is (no RGBA detour).
  png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8 });
}

/** Where imageGrid puts n images of height x width: `cols` per row, and the grid's size. */
export function gridLayout(n: number, height: number, width: number, padding: number, columns = Math.ceil(Math.sqrt(n))): { cols: number; width: number; height: number } {
  const cols = Math.min(columns, n);
  const rows = Math.ceil(n / cols);
  return { cols, width: cols * (width + padding) + padding, height: rows * (height + padding) + padding };
}

/**
 * Tiles n images (NHWC floats in [-1, 1], or their bytes from imageBytes) into one near-square
 * grid: cols = ceil(sqrt(n)), filled row by row, with `padding` black pixels around and between
 * images.
 */
export function imageGrid(
  images: Float32Array | Uint8Array,
  n: number,
  height: number,
  width: number,
  channels: number,
  padding = 2,
  /** Images per row; default ceil(sqrt(n)). */
  columns = Math.ceil(Math.sqrt(n)),
): { pixels: Uint8Array; width: number; height: number; channels: 1 | 3 } {
  for (const [name, value] of [['n', n], ['height', height], ['width', width]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`imageGrid: ${name} must be a positive integer, got ${value}`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new RangeError(`imageGrid: padding must be a non-negative integer, got ${padding}`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new RangeError(`imageGrid: channels must be 1 or 3, got ${channels}`);
  }
  const imageSize = height * width * channels;
  if (images.length !== n * imageSize) {
    throw new RangeError(
      `imageGrid: expected ${n * imageSize} values for ${n}x${height}x${width}x${channels}, got ${images.length}`,
    );
  }

  const bytes = images instanceof Uint8Array ? images : imageBytes(images);
  const { cols, width: gridWidth, height: gridHeight } = gridLayout(n, height, width, padding, columns);
  const pixels = new Uint8Array(gridWidth * gridHeight * channels);
  const rowLength = width * channels;
  for (let k = 0; k < n; k++) {
    const top = padding + Math.floor(k / cols) * (height + padding);
    const left = padding + (k % cols) * (width + padding);
    for (let y = 0; y < height; y++) {
      const src = k * imageSize + y * rowLength;
      const dst = ((top + y) * gridWidth + left) * channels;
      pixels.set(bytes.subarray(src, src + rowLength), dst);
    }
  }
  return { pixels, width: gridWidth, height: gridHeight, channels };
}

/** Pixel values in [-1, 1] as bytes, as grids and sample files store them: round((x + 1) * 127.5),
 * clipped; NaN becomes 0 so that a diverged sample shows up black instead of failing the write. */
export function imageBytes(images: Float32Array): Uint8Array {
  const out = new Uint8Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = unitToByte(images[i]);
  return out;
}

function unitToByte(value: number): number {
  if (Number.isNaN(value)) return 0;
  return Math.min(255, Math.max(0, Math.round((value + 1) * 127.5)));
}
