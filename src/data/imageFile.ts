/**
 * One image file decoded: PNG (pngjs) or JPEG (jpeg-js), told apart by their first bytes, to 8-bit
 * RGB and whether the file is greyscale; and a chunk of files decoded and fitted to a model, the
 * work of a decode thread (decodeThreads.ts) or of images:DIR's own loop (imageDir.ts).
 */
import { PNG } from 'pngjs';
import { decode as decodeJpeg } from 'jpeg-js';
import { readFileOrThrow } from './fsRead';
import { DataError } from './types';
import { type FitTarget, ImageFitter } from './fit';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** PNG colour type 0: greyscale without alpha. */
const PNG_COLOR_TYPE_GREY = 0;

/** What every image file is decoded to: 8-bit RGB, and whether the file is greyscale. */
export interface DecodedImage {
  width: number;
  height: number;
  /** Row-major RGB; R = G = B when `grey`. */
  rgb: Uint8Array;
  grey: boolean;
}

/** The sizes and kinds of image met: `${height}x${width}x${channels}`. */
export type SizeKey = string;
export interface ImageSize {
  height: number;
  width: number;
  channels: number;
}

export const sizeKey = (s: ImageSize): SizeKey => `${s.height}x${s.width}x${s.channels}`;

/** What a chunk of files became: fitted pixels, and each size met, in the order met. */
export interface DecodedChunk {
  pixels: Uint8Array;
  sizes: ImageSize[];
}

/** Decodes and fits these files in order (a decode thread's work, or this thread's). */
export async function decodeChunk(paths: string[], target: FitTarget): Promise<DecodedChunk> {
  const outImage = target.size * target.size * target.channels;
  const pixels = new Uint8Array(paths.length * outImage);
  const fitters = new Map<SizeKey, ImageFitter>();
  const sizes: ImageSize[] = [];
  for (let n = 0; n < paths.length; n++) {
    const image = await readImage(paths[n]);
    const size = { height: image.height, width: image.width, channels: image.grey ? 1 : 3 };
    let fitter = fitters.get(sizeKey(size));
    if (fitter === undefined) {
      fitter = new ImageFitter(size.height, size.width, size.channels, target);
      fitters.set(sizeKey(size), fitter);
      sizes.push(size);
    }
    fitter.fit(image.grey ? firstOfThreeChannels(image.rgb) : image.rgb, 0, pixels, n * outImage);
  }
  return { pixels, sizes };
}

/** A PNG or JPEG file, told apart by its first bytes (a misnamed file still loads). */
export async function readImage(path: string): Promise<DecodedImage> {
  const source = `images:${path}`;
  const file = await readFileOrThrow(path, source);
  if (file[0] === 0xff && file[1] === 0xd8) return readJpeg(file, source);
  if (!file.subarray(0, 8).equals(PNG_SIGNATURE)) {
    throw new DataError(`${source}: not a valid ${/\.png$/i.test(path) ? 'PNG' : 'JPEG'}: it starts with neither a PNG signature nor a JPEG start-of-image marker`);
  }
  let png;
  try {
    png = PNG.sync.read(file);
  } catch (err) {
    throw new DataError(`${source}: not a valid PNG: ${(err as Error).message}`);
  }
  // pngjs always hands back 8-bit RGBA (it expands grey, palettes and 16-bit samples).
  const rgb = new Uint8Array(png.width * png.height * 3);
  rgbaToRgb(png.data, rgb, 0);
  return { width: png.width, height: png.height, rgb, grey: png.colorType === PNG_COLOR_TYPE_GREY };
}

/**
 * Baseline and progressive JPEG through jpeg-js. Its chroma upsampling is by replication (as
 * libjpeg's -nosmooth; tested within 2 levels of libjpeg-turbo), where PIL and torchvision
 * interpolate: subsampled colour edges differ by a few levels at full size, less once resized.
 */
function readJpeg(file: Buffer, source: string): DecodedImage {
  const components = jpegComponents(file);
  try {
    const { width, height, data } = decodeJpeg(file, { useTArray: true, formatAsRGBA: false });
    return { width, height, rgb: data, grey: components === 1 };
  } catch (err) {
    throw new DataError(`${source}: not a valid JPEG: ${(err as Error).message}`);
  }
}

/** The number of components in a JPEG's frame header (1: greyscale; T.81 B.2.2), or undefined. */
function jpegComponents(file: Uint8Array): number | undefined {
  let i = 2;
  while (i + 9 < file.length && file[i] === 0xff) {
    const marker = file[i + 1];
    if (marker === 0xff) {
      i++; // a fill byte
      continue;
    }
    // SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC): FF Cn, length, precision, height, width, Nf.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return file[i + 9];
    i += 2 + ((file[i + 2] << 8) | file[i + 3]);
  }
  return undefined;
}

function rgbaToRgb(rgba: Uint8Array, out: Uint8Array, outOffset: number): void {
  const pixelCount = rgba.length / 4;
  for (let p = 0; p < pixelCount; p++) {
    out[outOffset + p * 3] = rgba[p * 4];
    out[outOffset + p * 3 + 1] = rgba[p * 4 + 1];
    out[outOffset + p * 3 + 2] = rgba[p * 4 + 2];
  }
}

/** For grey images R = G = B, so channel 0 is the grey value. */
export function firstOfThreeChannels(rgb: Uint8Array): Uint8Array {
  const grey = new Uint8Array(rgb.length / 3);
  for (let p = 0; p < grey.length; p++) grey[p] = rgb[p * 3];
  return grey;
}
