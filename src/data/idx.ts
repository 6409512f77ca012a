/**
 * IDX image files as published for MNIST and Fashion-MNIST
 * (http://yann.lecun.com/exdb/mnist/): a big-endian header, then uint8 pixels.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { readFileOrThrow } from './fsRead';
import { DataError, type ImageDataset, maxLabel } from './types';

const gunzipAsync = promisify(gunzip);

/** 0x00 0x00, type 0x08 (unsigned byte), 3 dimensions (count, rows, cols). */
const IDX_UBYTE_3D_MAGIC = 0x00000803;
/** Same layout with 1 dimension: the label file that sits next to the image file. */
const IDX_UBYTE_1D_MAGIC = 0x00000801;
const HEADER_BYTES = 16;

/** Reads an IDX image file, gzipped or raw (told apart by content, not by the file name), and
 * its labels from the file beside it named as MNIST's are (`train-images-idx3-ubyte[.gz]` ->
 * `train-labels-idx1-ubyte[.gz]`), if there is one. */
export async function loadIdx(path: string): Promise<ImageDataset> {
  const source = `idx:${path}`;
  const images = parseIdxImages(await readMaybeGzipped(path, source), source);
  const labelPath = labelFileBeside(path);
  if (labelPath === undefined || !existsSync(labelPath)) return images;
  const labels = parseIdxLabels(await readMaybeGzipped(labelPath, `idx:${labelPath}`), `idx:${labelPath}`, images.count);
  return { ...images, labels, classes: maxLabel(labels) + 1 };
}

/** MNIST's naming: the label file's name has `labels-idx1` where the image file's has `images-idx3`. */
export function labelFileBeside(imagePath: string): string | undefined {
  const name = basename(imagePath);
  return name.includes('images-idx3') ? join(dirname(imagePath), name.replace('images-idx3', 'labels-idx1')) : undefined;
}

async function readMaybeGzipped(path: string, source: string): Promise<Buffer> {
  const file = await readFileOrThrow(path, source);
  return isGzip(file) ? gunzipOrThrow(file, source) : file;
}

/** An IDX uint8 vector of `count` labels, each below 256 by type. */
export function parseIdxLabels(bytes: Uint8Array, source: string, count: number): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || view.getUint32(0, false) !== IDX_UBYTE_1D_MAGIC) {
    throw new DataError(`${source}: not an IDX label file: expected magic ${hex32(IDX_UBYTE_1D_MAGIC)} and a count`);
  }
  const found = view.getUint32(4, false);
  if (found !== count || bytes.length !== 8 + count) {
    throw new DataError(`${source}: expected ${count} labels (one per image) in ${8 + count} bytes, the header says ${found} in ${bytes.length} bytes`);
  }
  return new Uint8Array(bytes.subarray(8));
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

async function gunzipOrThrow(file: Buffer, source: string): Promise<Buffer> {
  try {
    return await gunzipAsync(file);
  } catch (err) {
    throw new DataError(`${source}: not a valid gzip file: ${(err as Error).message}`);
  }
}

/** Validates magic, dimensions and exact length, then copies out the pixels. */
export function parseIdxImages(bytes: Uint8Array, source: string): ImageDataset {
  if (bytes.length < HEADER_BYTES) {
    throw new DataError(
      `${source}: file is truncated: expected a ${HEADER_BYTES}-byte IDX header, found ${bytes.length} bytes`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== IDX_UBYTE_3D_MAGIC) {
    const hint = magic === IDX_UBYTE_1D_MAGIC ? ' (0x00000801 is an IDX label file)' : '';
    throw new DataError(
      `${source}: bad magic ${hex32(magic)}${hint}: expected ${hex32(IDX_UBYTE_3D_MAGIC)} (IDX uint8 images)`,
    );
  }
  const count = view.getUint32(4, false);
  const height = view.getUint32(8, false);
  const width = view.getUint32(12, false);
  if (height === 0 || width === 0) {
    throw new DataError(`${source}: bad image size ${height}x${width} in the IDX header`);
  }
  if (count === 0) {
    throw new DataError(`${source}: empty dataset: the IDX header says 0 images`);
  }
  // Float arithmetic is exact here: the product is below 2^53 for any 32-bit dims that fit in memory.
  const expectedBytes = HEADER_BYTES + count * height * width;
  if (bytes.length < expectedBytes) {
    throw new DataError(
      `${source}: file is truncated: expected ${expectedBytes} bytes (header + ${count}x${height}x${width} pixels), found ${bytes.length}`,
    );
  }
  if (bytes.length > expectedBytes) {
    throw new DataError(
      `${source}: file is too long: expected ${expectedBytes} bytes (header + ${count}x${height}x${width} pixels), found ${bytes.length}`,
    );
  }
  // Copy so the dataset owns a plain Uint8Array and does not pin the file buffer.
  const pixels = new Uint8Array(bytes.subarray(HEADER_BYTES));
  return { count, height, width, channels: 1, pixels, source };
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
