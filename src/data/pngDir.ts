/**
 * A directory of PNG files as one dataset. Loaded for a model (a FitTarget), each image is fitted
 * as it is decoded, so images may have any sizes and only the fitted pixels are held; loaded as
 * they are, every image must have the first one's size.
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PNG, type PNGWithMetadata } from 'pngjs';
import { listDirectoryOrThrow, readFileOrThrow, requireDirectory } from './fsRead';
import { DataError, type ImageDataset } from './types';
import { type FitTarget, ImageFitter, checkFitTarget, fittedFrom } from './fit';

/** PNG colour type 0: greyscale without alpha. */
const PNG_COLOR_TYPE_GREY = 0;

/** Code-unit order, so the order does not depend on the locale. */
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const isPng = (name: string) => name.toLowerCase().endsWith('.png');

/**
 * Loads every `*.png` (case-insensitive) in dir, sorted by file name. A directory with no PNG of
 * its own but subdirectories holding them is labelled as torchvision's ImageFolder is: each
 * subdirectory a class, numbered in name order (`classNames`), its PNGs in name order. The result
 * has 1 channel if every file is greyscale (colour type 0), else 3; alpha is dropped, not
 * composited, since training images are expected to be opaque.
 */
export async function loadPngDirectory(dir: string, fit?: FitTarget): Promise<ImageDataset> {
  const source = `images:${dir}`;
  await requireDirectory(dir, source);
  const decode = (paths: string[]) => (fit === undefined ? decodeAll(paths, source) : decodeFitted(paths, source, fit));
  const entries = (await listDirectoryOrThrow(dir, source)).sort(byName);
  if (entries.some(isPng)) return decode(entries.filter(isPng).map((name) => join(dir, name)));
  const classNames: string[] = [];
  for (const name of entries) {
    if (await isDirectory(join(dir, name))) classNames.push(name);
  }
  if (classNames.length === 0) throw new DataError(`${source}: empty dataset: no *.png files in the directory, nor subdirectories of them (one per class)`);
  if (classNames.length > 255) throw new DataError(`${source}: ${classNames.length} subdirectories (classes); at most 255 are supported`);
  const files: string[] = [];
  const labels: number[] = [];
  for (const [label, name] of classNames.entries()) {
    const classDir = join(dir, name);
    const inClass = (await listDirectoryOrThrow(classDir, `images:${classDir}`)).filter(isPng).sort(byName);
    if (inClass.length === 0) throw new DataError(`images:${classDir}: no *.png files in this class's subdirectory`);
    for (const file of inClass) {
      files.push(join(classDir, file));
      labels.push(label);
    }
  }
  return { ...(await decode(files)), labels: Uint8Array.from(labels), classes: classNames.length, classNames };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** The files' images, which must all have the first one's size. */
async function decodeAll(paths: string[], source: string): Promise<ImageDataset> {
  // Decoded first, before the loop, to size the output buffer.
  const firstPng = await readPng(paths[0]);
  const { width, height } = firstPng;
  // Filled as RGB while decoding (colour types are only all known at the end), then
  // reduced to one channel if every file turned out to be grey.
  const rgb = new Uint8Array(paths.length * height * width * 3);
  let allGrey = true;
  for (let n = 0; n < paths.length; n++) {
    const png = n === 0 ? firstPng : await readPng(paths[n]);
    if (png.width !== width || png.height !== height) {
      throw new DataError(
        `images:${paths[n]}: image is ${png.width}x${png.height}, but ${basename(paths[0])} is ${width}x${height}; all images must have the same size`,
      );
    }
    allGrey &&= png.colorType === PNG_COLOR_TYPE_GREY;
    rgbaToRgb(png.data, rgb, n * height * width * 3);
  }
  const pixels = allGrey ? firstOfThreeChannels(rgb) : rgb;
  return { count: paths.length, height, width, channels: allGrey ? 1 : 3, pixels, source };
}

/** The files' images, each fitted to the target as it is decoded: sizes may differ. */
async function decodeFitted(paths: string[], source: string, target: FitTarget): Promise<ImageDataset> {
  checkFitTarget(target);
  const outImage = target.size * target.size * target.channels;
  const pixels = new Uint8Array(paths.length * outImage);
  const fitters = new Map<string, ImageFitter>();
  const sizes = new Map<string, { height: number; width: number; channels: number }>();
  for (let n = 0; n < paths.length; n++) {
    const png = await readPng(paths[n]);
    const channels = png.colorType === PNG_COLOR_TYPE_GREY ? 1 : 3;
    const key = `${png.height}x${png.width}x${channels}`;
    let fitter = fitters.get(key);
    if (fitter === undefined) {
      fitter = new ImageFitter(png.height, png.width, channels, target);
      fitters.set(key, fitter);
      sizes.set(key, { height: png.height, width: png.width, channels });
    }
    const image = new Uint8Array(png.height * png.width * 3);
    rgbaToRgb(png.data, image, 0);
    fitter.fit(channels === 1 ? firstOfThreeChannels(image) : image, 0, pixels, n * outImage);
  }
  const all = [...sizes.values()];
  const same = all.length === 1 && all[0].height === target.size && all[0].width === target.size && all[0].channels === target.channels;
  const from = all.length === 1 ? fittedFrom(all[0], target.mode) : describeSizes(all, target.mode);
  return { count: paths.length, height: target.size, width: target.size, channels: target.channels, pixels, source, ...(same ? {} : { fittedFrom: from }) };
}

/** "37 sizes, 96x128 to 1024x768, RGB and grey, non-square ones centre-cropped". */
function describeSizes(all: { height: number; width: number; channels: number }[], mode: FitTarget['mode']): string {
  const byArea = [...all].sort((a, b) => a.height * a.width - b.height * b.width);
  const dims = [...new Set(all.map((s) => `${s.height}x${s.width}`))];
  const kinds = [...new Set(all.map((s) => (s.channels === 1 ? 'grey' : 'RGB')))].join(' and ');
  const squareOnly = all.every((s) => s.height === s.width);
  const range = dims.length === 1 ? dims[0] : `${dims.length} sizes, ${byArea[0].height}x${byArea[0].width} to ${byArea[byArea.length - 1].height}x${byArea[byArea.length - 1].width}`;
  return `${range}, ${kinds}${squareOnly ? '' : mode === 'crop' ? ', non-square ones centre-cropped' : ', non-square ones stretched'}`;
}

/** pngjs always hands back 8-bit RGBA (it expands grey, palettes and 16-bit samples). */
async function readPng(path: string): Promise<PNGWithMetadata> {
  const source = `images:${path}`;
  const file = await readFileOrThrow(path, source);
  try {
    return PNG.sync.read(file);
  } catch (err) {
    throw new DataError(`${source}: not a valid PNG: ${(err as Error).message}`);
  }
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
function firstOfThreeChannels(rgb: Uint8Array): Uint8Array {
  const grey = new Uint8Array(rgb.length / 3);
  for (let p = 0; p < grey.length; p++) grey[p] = rgb[p * 3];
  return grey;
}
