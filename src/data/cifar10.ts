/**
 * CIFAR-10 "binary version" (https://www.cs.toronto.edu/~kriz/cifar.html):
 * data_batch_1.bin .. data_batch_5.bin, each a run of 3073-byte records,
 * 1 label byte then a 32x32 image stored planar (all red, all green, all blue).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describeFsError, readFileOrThrow, requireDirectory } from './fsRead';
import { DataError, type ImageDataset } from './types';

const SIDE = 32;
const CHANNELS = 3;
const PLANE_BYTES = SIDE * SIDE;
const IMAGE_BYTES = PLANE_BYTES * CHANNELS;
const RECORD_BYTES = 1 + IMAGE_BYTES;
/** batches.meta.txt's names, in label order. */
const CLASS_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const CLASSES = CLASS_NAMES.length;
/** Only the training batches: test_batch.bin is held out on purpose. */
const BATCH_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);

/** Loads whichever of the five training batches exist in dir, in batch order, as HWC pixels. */
export async function loadCifar10(dir: string): Promise<ImageDataset> {
  const source = `cifar10:${dir}`;
  await requireDirectory(dir, source);

  const batches: { path: string; records: number }[] = [];
  for (const name of BATCH_FILES) {
    const path = join(dir, name);
    const size = await fileSizeOrNull(path, `cifar10:${path}`);
    if (size === null) continue;
    if (size % RECORD_BYTES !== 0) {
      throw new DataError(
        `cifar10:${path}: file size ${size} is not a multiple of the ${RECORD_BYTES}-byte record`,
      );
    }
    batches.push({ path, records: size / RECORD_BYTES });
  }
  if (batches.length === 0) {
    throw new DataError(`${source}: no CIFAR-10 batches found: expected ${BATCH_FILES.join(', ')}`);
  }
  const count = batches.reduce((sum, b) => sum + b.records, 0);
  if (count === 0) {
    throw new DataError(`${source}: empty dataset: all batch files are empty`);
  }

  // Allocate once and fill batch by batch, so peak memory is the output plus one file.
  const pixels = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let firstImage = 0;
  for (const batch of batches) {
    const file = await readFileOrThrow(batch.path, `cifar10:${batch.path}`);
    if (file.length !== batch.records * RECORD_BYTES) {
      throw new DataError(`cifar10:${batch.path}: file changed size while loading`);
    }
    planarRecordsToHwc(file, batch.records, pixels, firstImage * IMAGE_BYTES);
    for (let r = 0; r < batch.records; r++) {
      const label = file[r * RECORD_BYTES];
      if (label >= CLASSES) throw new DataError(`cifar10:${batch.path}: record ${r} has label ${label}, expected 0-${CLASSES - 1}`);
      labels[firstImage + r] = label;
    }
    firstImage += batch.records;
  }
  return { count, height: SIDE, width: SIDE, channels: CHANNELS, pixels, source, labels, classes: CLASSES, classNames: CLASS_NAMES };
}

/** Writes records' images as HWC into out starting at outOffset, skipping each label byte. */
function planarRecordsToHwc(file: Uint8Array, records: number, out: Uint8Array, outOffset: number): void {
  for (let r = 0; r < records; r++) {
    const planes = r * RECORD_BYTES + 1;
    const image = outOffset + r * IMAGE_BYTES;
    for (let p = 0; p < PLANE_BYTES; p++) {
      const o = image + p * CHANNELS;
      out[o] = file[planes + p];
      out[o + 1] = file[planes + PLANE_BYTES + p];
      out[o + 2] = file[planes + 2 * PLANE_BYTES + p];
    }
  }
}

/** Size of a regular file, null if absent (batches may be missing), DataError on other failures. */
async function fileSizeOrNull(path: string, source: string): Promise<number | null> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new DataError(`${source}: not a regular file`);
    return info.size;
  } catch (err) {
    if (err instanceof DataError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DataError(`${source}: ${describeFsError(err)}`);
  }
}
