/**
 * A directory of PNG files as one dataset. Every image must have the same size;
 * images are not resized here (fitDataset does that, once, for all formats).
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PNG, type PNGWithMetadata } from 'pngjs';
import { listDirectoryOrThrow, readFileOrThrow, requireDirectory } from './fsRead';
import { DataError, type ImageDataset } from './types';

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
export async function loadPngDirectory(dir: string): Promise<ImageDataset> {
  const source = `images:${dir}`;
  await requireDirectory(dir, source);
  const entries = (await listDirectoryOrThrow(dir, source)).sort(byName);
  if (entries.some(isPng)) return decodeAll(entries.filter(isPng).map((name) => join(dir, name)), source);
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
  return { ...(await decodeAll(files, source)), labels: Uint8Array.from(labels), classes: classNames.length, classNames };
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
