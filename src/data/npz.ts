/**
 * NumPy's .npz: a zip of .npy arrays (numpy.lib.format, version 1.0), written stored
 * (uncompressed), as `numpy.savez` writes it; read stored or deflated (`numpy.savez_compressed`).
 * Evaluation code for diffusion models reads samples this way (`np.load(f)["arr_0"]`: uint8 NHWC
 * images; "arr_1": their labels, as guided-diffusion saves them). Without ZIP64: a file holds at
 * most NPZ_MAX_BYTES (4 GiB), checked by npzSize before anything is sampled.
 */

import { inflateRawSync } from 'node:zlib';

/** uint8, int64, or unicode strings (numpy's '<U', fixed width, UTF-32). */
export type NpyArray = { data: Uint8Array; shape: number[] } | { data: BigInt64Array; shape: number[] } | { data: string[]; shape: number[] };

/** The most a zip without ZIP64 holds. */
export const NPZ_MAX_BYTES = 0xffffffff;
const STORED = 0;
const DEFLATED = 8;
const LOCAL_HEADER = 30;
const CENTRAL_HEADER = 46;
const END_OF_DIRECTORY = 22;
/** 1980-01-01 00:00, the earliest DOS time: the same arrays give the same bytes. */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

function npyHeader(descr: string, shape: number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  // numpy pads with spaces and a newline so that the data starts at a multiple of 64 bytes.
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const header = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total);
  out.set([0x93, ...Buffer.from('NUMPY', 'latin1'), 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  return out;
}

/** One array as .npy bytes: header, then the data in C order. */
export function encodeNpy(array: NpyArray): Uint8Array {
  const count = array.shape.reduce((a, b) => a * b, 1);
  if (array.data.length !== count) throw new RangeError(`encodeNpy: ${array.data.length} values for shape (${array.shape.join(', ')})`);
  if (Array.isArray(array.data)) return encodeStrings(array.data, array.shape);
  const header = npyHeader(array.data instanceof Uint8Array ? '|u1' : '<i8', array.shape);
  const out = new Uint8Array(header.length + array.data.byteLength);
  out.set(header);
  out.set(new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength), header.length);
  return out;
}

/** numpy's '<U{width}': every string as `width` UTF-32LE code points, NUL-padded. */
function encodeStrings(strings: string[], shape: number[]): Uint8Array {
  const points = strings.map((s) => Array.from(s, (c) => c.codePointAt(0) as number));
  const width = Math.max(1, ...points.map((p) => p.length));
  const header = npyHeader(`<U${width}`, shape);
  const out = new Uint8Array(header.length + 4 * width * strings.length);
  out.set(header);
  const view = new DataView(out.buffer, header.length);
  points.forEach((p, i) => p.forEach((c, j) => view.setUint32(4 * (i * width + j), c, true)));
  return out;
}

/** The strings of a '<U{width}' array (trailing NULs dropped, as numpy does). */
export function decodeStrings(entry: NpyEntry): string[] {
  const m = /^<U(\d+)$/.exec(entry.descr);
  if (m === null) throw new RangeError(`dtype ${entry.descr} is not a unicode string array`);
  const width = Number(m[1]);
  const count = entry.shape.reduce((a, b) => a * b, 1);
  if (entry.data.length !== 4 * width * count) throw new RangeError(`${entry.data.length} bytes for ${count} strings of ${width}`);
  const view = new DataView(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
  return Array.from({ length: count }, (_, i) => {
    const points = Array.from({ length: width }, (_, j) => view.getUint32(4 * (i * width + j), true));
    while (points.length > 0 && points[points.length - 1] === 0) points.pop();
    return String.fromCodePoint(...points);
  });
}

/** Bytes of an .npz holding arrays of these byte sizes: to refuse one over the zip limit early. */
export function npzSize(arrays: { name: string; bytes: number }[]): number {
  return arrays.reduce((sum, a) => {
    const npy = 128 + a.bytes; // a header is 64 or 128 bytes for up to 4 dimensions
    const name = `${a.name}.npy`.length;
    return sum + LOCAL_HEADER + name + npy + CENTRAL_HEADER + name;
  }, END_OF_DIRECTORY);
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, as zip and PNG use it). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The .npz bytes of named arrays ("arr_0" is read as np.load(f)["arr_0"]). */
export function encodeNpz(arrays: { name: string; array: NpyArray }[]): Uint8Array {
  const entries = arrays.map(({ name, array }) => {
    const npy = encodeNpy(array);
    return { name: Buffer.from(`${name}.npy`, 'utf8'), npy, crc: crc32(npy) };
  });
  const central = entries.reduce((s, e) => s + CENTRAL_HEADER + e.name.length, 0);
  const total = entries.reduce((s, e) => s + LOCAL_HEADER + e.name.length + e.npy.length, 0) + central + END_OF_DIRECTORY;
  if (total > NPZ_MAX_BYTES) throw new RangeError(`encodeNpz: ${total} bytes, over the ${NPZ_MAX_BYTES} a zip without ZIP64 holds`);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  const u16 = (v: number) => { view.setUint16(at, v, true); at += 2; };
  const u32 = (v: number) => { view.setUint32(at, v, true); at += 4; };
  const bytes = (b: Uint8Array) => { out.set(b, at); at += b.length; };
  // version 2.0, no flags, stored, DOS time and date, CRC-32, both sizes, name length, no extra field
  const common = (e: (typeof entries)[number]) => { u16(20); u16(0); u16(0); u16(0); u16(DOS_DATE); u32(e.crc); u32(e.npy.length); u32(e.npy.length); u16(e.name.length); u16(0); };
  const offsets: number[] = [];
  for (const e of entries) {
    offsets.push(at);
    u32(0x04034b50);
    common(e);
    bytes(e.name);
    bytes(e.npy);
  }
  const directory = at;
  entries.forEach((e, i) => {
    u32(0x02014b50);
    u16(20); // made by: version 2.0, MS-DOS attributes
    common(e);
    u16(0); u16(0); u16(0); u32(0); // comment length, disk, internal and external attributes
    u32(offsets[i]);
    bytes(e.name);
  });
  const directorySize = at - directory;
  u32(0x06054b50);
  u16(0); u16(0); u16(entries.length); u16(entries.length); // this disk, the directory's disk, entries here and in all
  u32(directorySize);
  u32(directory);
  u16(0); // comment length
  return out;
}

/** One array of a decoded .npz: its dtype ("|u1", "<i8", ...), shape, and data bytes. */
export interface NpyEntry {
  descr: string;
  shape: number[];
  /** The .npy member's bytes, header included. */
  npy: Uint8Array;
  /** The array's data, after the header (a view into the file). */
  data: Uint8Array;
}

/** Reads an .npz (numpy.savez, savez_compressed, encodeNpz) through its central directory,
 * checking each entry's local header and CRC-32. Throws RangeError naming what is wrong. */
export function decodeNpz(file: Uint8Array): Map<string, NpyEntry> {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const eocd = file.length - END_OF_DIRECTORY;
  if (eocd < 0 || view.getUint32(eocd, true) !== 0x06054b50) throw new RangeError('not a zip without a comment (no end-of-central-directory record at its end)');
  const entries = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  if (at + view.getUint32(eocd + 12, true) !== eocd) throw new RangeError('the central directory does not end where its end record begins');
  const text = (from: number, length: number) => Buffer.from(file.subarray(from, from + length)).toString('utf8');
  const out = new Map<string, NpyEntry>();
  for (let i = 0; i < entries; i++) {
    if (at + CENTRAL_HEADER > eocd || view.getUint32(at, true) !== 0x02014b50) throw new RangeError(`central directory entry ${i}: bad signature`);
    const method = view.getUint16(at + 10, true);
    const crc = view.getUint32(at + 16, true);
    const nameLength = view.getUint16(at + 28, true);
    const name = text(at + 46, nameLength);
    const stored = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    if (method !== STORED && method !== DEFLATED) throw new RangeError(`${name}: compression method ${method}; only stored and deflated entries are read`);
    if (stored === 0xffffffff || size === 0xffffffff) throw new RangeError(`${name}: over 4 GiB (ZIP64), which this reader does not read`);
    const local = view.getUint32(at + 42, true);
    if (local + LOCAL_HEADER > file.length || view.getUint32(local, true) !== 0x04034b50) throw new RangeError(`${name}: bad local header`);
    const localName = view.getUint16(local + 26, true);
    if (text(local + 30, localName) !== name) throw new RangeError(`${name}: the local header names another file`);
    const start = local + LOCAL_HEADER + localName + view.getUint16(local + 28, true);
    if (start + stored > file.length) throw new RangeError(`${name}: runs past the end of the file`);
    const npy = method === STORED ? file.subarray(start, start + stored) : inflate(name, file.subarray(start, start + stored));
    if (npy.length !== size) throw new RangeError(`${name}: ${npy.length} bytes, the directory says ${size}`);
    if (crc32(npy) !== crc) throw new RangeError(`${name}: CRC-32 mismatch`);
    out.set(name.replace(/\.npy$/, ''), parseNpy(name, npy));
    at += CENTRAL_HEADER + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
  }
  return out;
}

function inflate(name: string, deflated: Uint8Array): Uint8Array {
  try {
    return inflateRawSync(deflated);
  } catch (err) {
    throw new RangeError(`${name}: bad deflate data (${(err as Error).message})`);
  }
}

function parseNpy(name: string, npy: Uint8Array): NpyEntry {
  if (Buffer.from(npy.subarray(0, 6)).toString('latin1') !== '\x93NUMPY' || npy[6] !== 1) throw new RangeError(`${name}: not a version 1 .npy`);
  const headerLength = npy[8] | (npy[9] << 8);
  const header = Buffer.from(npy.subarray(10, 10 + headerLength)).toString('latin1');
  const m = /^\{'descr': '([^']+)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \} *\n$/.exec(header);
  if (m === null) throw new RangeError(`${name}: unsupported .npy header ${JSON.stringify(header.trim())} (C order, one dtype)`);
  const shape = m[2].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  return { descr: m[1], shape, npy, data: npy.subarray(10 + headerLength) };
}
