/**
 * A directory of PNG and JPEG files as one dataset. Loaded for a model (a FitTarget), each image is fitted
 * as it is decoded, so images may have any sizes and only the fitted pixels are held; loaded as
 * they are, every image must have the first one's size.
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { listDirectoryOrThrow, requireDirectory } from './fsRead';
import { DataError, type ImageDataset } from './types';
import { type FitTarget, checkFitTarget, fittedFrom } from './fit';
import { type DecodedChunk, type ImageSize, type SizeKey, decodeChunk, firstOfThreeChannels, readImage, sizeKey } from './imageFile';
import { DecodeThreads } from './decodeThreads';

/** Code-unit order, so the order does not depend on the locale. */
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const isImage = (name: string) => /\.(png|jpe?g)$/i.test(name);
const IMAGE_FILES = '*.png, *.jpg or *.jpeg files';

/**
 * Loads every `*.png`, `*.jpg` and `*.jpeg` (case-insensitive) in dir, sorted by file name. A
 * directory with no image of its own but subdirectories holding them is labelled as torchvision's
 * ImageFolder is: each subdirectory a class, numbered in name order (`classNames`), its images in
 * name order. The result has 1 channel if every file is greyscale (PNG colour type 0, a JPEG of
 * one component), else 3; alpha is dropped, not composited, since training images are expected
 * to be opaque.
 */
export async function loadImageDirectory(dir: string, fit?: FitTarget, opts: DecodeOptions = {}): Promise<ImageDataset> {
  const source = `images:${dir}`;
  await requireDirectory(dir, source);
  const decode = (paths: string[]) => (fit === undefined ? decodeAll(paths, source) : decodeFitted(paths, source, fit, opts));
  const entries = (await listDirectoryOrThrow(dir, source)).sort(byName);
  if (entries.some(isImage)) return decode(entries.filter(isImage).map((name) => join(dir, name)));
  const classNames: string[] = [];
  for (const name of entries) {
    if (await isDirectory(join(dir, name))) classNames.push(name);
  }
  if (classNames.length === 0) throw new DataError(`${source}: empty dataset: no ${IMAGE_FILES} in the directory, nor subdirectories of them (one per class)`);
  if (classNames.length > 255) throw new DataError(`${source}: ${classNames.length} subdirectories (classes); at most 255 are supported`);
  const files: string[] = [];
  const labels: number[] = [];
  for (const [label, name] of classNames.entries()) {
    const classDir = join(dir, name);
    const inClass = (await listDirectoryOrThrow(classDir, `images:${classDir}`)).filter(isImage).sort(byName);
    if (inClass.length === 0) throw new DataError(`images:${classDir}: no ${IMAGE_FILES} in this class's subdirectory`);
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
  const first = await readImage(paths[0]);
  const { width, height } = first;
  // Filled as RGB while decoding (colour types are only all known at the end), then
  // reduced to one channel if every file turned out to be grey.
  const rgb = new Uint8Array(paths.length * height * width * 3);
  let allGrey = true;
  for (let n = 0; n < paths.length; n++) {
    const image = n === 0 ? first : await readImage(paths[n]);
    if (image.width !== width || image.height !== height) {
      throw new DataError(
        `images:${paths[n]}: image is ${image.width}x${image.height}, but ${basename(paths[0])} is ${width}x${height}; all images must have the same size`,
      );
    }
    allGrey &&= image.grey;
    rgb.set(image.rgb, n * height * width * 3);
  }
  const pixels = allGrey ? firstOfThreeChannels(rgb) : rgb;
  return { count: paths.length, height, width, channels: allGrey ? 1 : 3, pixels, source };
}

/** Images per call to a decode thread, and per progress check. */
const CHUNK = 32;
const PROGRESS_EVERY_MS = 10_000;

/** How the images of a directory are decoded when fitted to a model. */
export interface DecodeOptions {
  /** Threads decoding at once (one per core is right; 1: this thread only). Any number gives the
   * same pixels: each image is decoded and fitted on its own. */
  threads?: number;
  /** Progress of a long load, every `progressEveryMs` (10 s). */
  log?: (line: string) => void;
  progressEveryMs?: number;
}

/** The files' images, each fitted to the target as it is decoded: sizes may differ. Chunks go to
 * decode threads where there are several; they are put together in file order. */
async function decodeFitted(paths: string[], source: string, target: FitTarget, opts: DecodeOptions): Promise<ImageDataset> {
  checkFitTarget(target);
  const outImage = target.size * target.size * target.channels;
  const pixels = new Uint8Array(paths.length * outImage);
  const chunks = Math.ceil(paths.length / CHUNK);
  const threads = Math.min(opts.threads ?? 1, chunks);
  const decoders = threads > 1 ? await DecodeThreads.start(threads, target) : undefined;
  const decode = (c: number) => {
    const some = paths.slice(c * CHUNK, (c + 1) * CHUNK);
    return decoders === undefined ? decodeChunk(some, target) : decoders.decode(some);
  };
  const sizes = new Map<SizeKey, ImageSize>();
  const started = Date.now();
  let lastLog = started;
  const pending = new Map<number, Promise<DecodedChunk>>();
  // Two chunks asked for per thread, so none waits for its next; taken up in file order.
  const ahead = decoders === undefined ? 1 : 2 * threads;
  try {
    for (let c = 0; c < chunks; c++) {
      for (let k = c; k < Math.min(c + ahead, chunks); k++) {
        if (pending.has(k)) continue;
        const p = decode(k);
        p.catch(() => undefined); // awaited in its turn; not unhandled if an earlier chunk fails first
        pending.set(k, p);
      }
      const chunk = await (pending.get(c) as Promise<DecodedChunk>);
      pending.delete(c);
      pixels.set(chunk.pixels, c * CHUNK * outImage);
      for (const s of chunk.sizes) if (!sizes.has(sizeKey(s))) sizes.set(sizeKey(s), s);
      const now = Date.now();
      if (opts.log !== undefined && now - lastLog >= (opts.progressEveryMs ?? PROGRESS_EVERY_MS) && c + 1 < chunks) {
        lastLog = now;
        const done = (c + 1) * CHUNK;
        const left = ((now - started) / done) * (paths.length - done);
        opts.log(`data: ${source}: ${done} of ${paths.length} images decoded (${Math.floor((100 * done) / paths.length)}%), about ${Math.ceil(left / 1000)} s left`);
      }
    }
  } finally {
    await decoders?.stop();
  }
  const all = [...sizes.values()];
  const same = all.length === 1 && all[0].height === target.size && all[0].width === target.size && all[0].channels === target.channels;
  const from = all.length === 1 ? fittedFrom(all[0], target.mode) : describeSizes(all, target.mode);
  return { count: paths.length, height: target.size, width: target.size, channels: target.channels, pixels, source, ...(same ? {} : { fittedFrom: from }) };
}

/** "37 sizes, 96x128 to 1024x768, RGB and grey, non-square ones centre-cropped". */
function describeSizes(all: ImageSize[], mode: FitTarget['mode']): string {
  const byArea = [...all].sort((a, b) => a.height * a.width - b.height * b.width);
  const dims = [...new Set(all.map((s) => `${s.height}x${s.width}`))];
  const kinds = [...new Set(all.map((s) => (s.channels === 1 ? 'grey' : 'RGB')))].join(' and ');
  const squareOnly = all.every((s) => s.height === s.width);
  const range = dims.length === 1 ? dims[0] : `${dims.length} sizes, ${byArea[0].height}x${byArea[0].width} to ${byArea[byArea.length - 1].height}x${byArea[byArea.length - 1].width}`;
  return `${range}, ${kinds}${squareOnly ? '' : mode === 'crop' ? ', non-square ones centre-cropped' : ', non-square ones stretched'}`;
}
