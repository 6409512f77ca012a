/**
 * A NumPy archive as a dataset (`npz:FILE`): what `np.savez(f, images, labels)` or
 * `np.savez_compressed` writes, and what `ddpm sample --out x.npz` and guided-diffusion's
 * reference batches hold. arr_0: uint8 images, (N, H, W, C) with C 1 or 3, or (N, H, W) for grey;
 * arr_1, if there: one integer class label per image; class_names, if there: what each class is
 * called (a string array, as `ddpm data` writes for an image folder's subdirectories).
 */
import { readLargeFileOrThrow } from './fsRead';
import { type NpyEntry, decodeNpz, decodeStrings, encodeNpz, npzSize } from './npz';
import { DataError, type ImageDataset, maxLabel } from './types';

/** Little-endian (or byte-sized) integer dtypes a label array may have: width, and a reader. */
const LABEL_DTYPES: Record<string, { bytes: number; read: (v: DataView, at: number) => number }> = {
  '|u1': { bytes: 1, read: (v, at) => v.getUint8(at) }, '|i1': { bytes: 1, read: (v, at) => v.getInt8(at) },
  '<u2': { bytes: 2, read: (v, at) => v.getUint16(at, true) }, '<i2': { bytes: 2, read: (v, at) => v.getInt16(at, true) },
  '<u4': { bytes: 4, read: (v, at) => v.getUint32(at, true) }, '<i4': { bytes: 4, read: (v, at) => v.getInt32(at, true) },
  '<u8': { bytes: 8, read: (v, at) => Number(v.getBigUint64(at, true)) }, '<i8': { bytes: 8, read: (v, at) => Number(v.getBigInt64(at, true)) },
};

/** Bytes of encodeImageNpz's archive, to refuse one over NPZ_MAX_BYTES before the images are
 * drawn or loaded (class names are small: left out). */
export function imageNpzBytes(count: number, perImage: number, labelled: boolean): number {
  return npzSize([{ name: 'arr_0', bytes: count * perImage }, ...(labelled ? [{ name: 'arr_1', bytes: 8 * count }] : [])]);
}

/** Images in the form loadNpz reads back (and np.load and guided-diffusion's evaluator read):
 * arr_0 uint8 NHWC; with labels, arr_1 int64 and, where the classes are named, class_names. */
export function encodeImageNpz(pixels: Uint8Array, shape: [number, number, number, number], labels?: Uint8Array, classNames?: string[]): Uint8Array {
  return encodeNpz([
    { name: 'arr_0', array: { data: pixels, shape } },
    ...(labels ? [{ name: 'arr_1', array: { data: BigInt64Array.from(labels, BigInt), shape: [shape[0]] } }] : []),
    ...(labels && classNames ? [{ name: 'class_names', array: { data: classNames, shape: [classNames.length] } }] : []),
  ]);
}

export async function loadNpz(path: string): Promise<ImageDataset> {
  const source = `npz:${path}`;
  let arrays: Map<string, NpyEntry>;
  try {
    arrays = decodeNpz(await readLargeFileOrThrow(path, source));
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${source}: not a readable .npz: ${(err as Error).message}`);
  }
  const images = arrays.get('arr_0');
  const names = [...arrays.keys()].join(', ') || 'none';
  if (images === undefined) throw new DataError(`${source}: no arr_0 (its arrays: ${names}); save the images first, unnamed: np.savez(f, images, labels)`);
  const shape = `(${images.shape.join(', ')})`;
  if (images.descr !== '|u1') throw new DataError(`${source}: arr_0 has dtype ${images.descr}; images must be uint8 (0-255)`);
  const [count, height, width, channels = 1] = images.shape;
  if (!(images.shape.length === 3 || (images.shape.length === 4 && (channels === 1 || channels === 3)))) {
    throw new DataError(`${source}: arr_0 has shape ${shape}; images must be (N, H, W, C) with C 1 or 3, or (N, H, W)`);
  }
  if (count === 0 || height === 0 || width === 0) throw new DataError(`${source}: empty dataset: arr_0 has shape ${shape}`);
  const dataset: ImageDataset = { count, height, width, channels, pixels: images.data.slice(), source };
  const labelArray = arrays.get('arr_1');
  if (labelArray === undefined) return dataset;
  const labels = readLabels(labelArray, count, source);
  const namesArray = arrays.get('class_names');
  if (namesArray === undefined) return { ...dataset, labels, classes: maxLabel(labels) + 1 };
  const classNames = readClassNames(namesArray, source);
  if (maxLabel(labels) >= classNames.length) throw new DataError(`${source}: arr_1 has label ${maxLabel(labels)}, but class_names names ${classNames.length} classes`);
  return { ...dataset, labels, classes: classNames.length, classNames };
}

function readClassNames(a: NpyEntry, source: string): string[] {
  let names: string[];
  try {
    if (a.shape.length !== 1) throw new RangeError(`shape (${a.shape.join(', ')}), not one name per class`);
    names = decodeStrings(a);
  } catch (err) {
    throw new DataError(`${source}: class_names: ${(err as Error).message}`);
  }
  if (names.length === 0 || names.length > 255) throw new DataError(`${source}: class_names names ${names.length} classes; 1 to 255 are supported`);
  return names;
}

function readLabels(a: NpyEntry, count: number, source: string): Uint8Array {
  const dtype = LABEL_DTYPES[a.descr];
  if (dtype === undefined || a.shape.length !== 1) throw new DataError(`${source}: arr_1 has dtype ${a.descr} and shape (${a.shape.join(', ')}); labels must be integers, one per image`);
  if (a.shape[0] !== count) throw new DataError(`${source}: arr_1 has ${a.shape[0]} labels for ${count} images`);
  const view = new DataView(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const value = dtype.read(view, i * dtype.bytes);
    if (!(value >= 0 && value <= 254)) throw new DataError(`${source}: arr_1[${i}] is ${value}; class labels must be 0 to 254`);
    labels[i] = value;
  }
  return labels;
}
