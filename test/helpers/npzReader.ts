/**
 * A reader of uncompressed .npz files written from the zip and .npy specifications, for tests: it
 * finds the entries through the end-of-central-directory record and the central directory (as
 * numpy's zipfile does), checks each entry's local header and CRC-32 with the given function, and
 * parses the .npy header. Checked against a file numpy itself wrote (test/npz.test.ts).
 */
export interface NpyEntry {
  descr: string;
  shape: number[];
  /** The .npy member's bytes, header included. */
  npy: Uint8Array;
  /** The array's data (after the header). */
  data: Uint8Array;
}

export function readNpz(file: Uint8Array, crc32: (b: Uint8Array) => number): Map<string, NpyEntry> {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const eocd = file.length - 22;
  if (view.getUint32(eocd, true) !== 0x06054b50) throw new Error('no end-of-central-directory record (or a zip comment)');
  const entries = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  if (at + view.getUint32(eocd + 12, true) !== eocd) throw new Error('central directory size and offset do not meet the end record');
  const out = new Map<string, NpyEntry>();
  for (let i = 0; i < entries; i++) {
    if (view.getUint32(at, true) !== 0x02014b50) throw new Error(`central directory entry ${i}: bad signature`);
    const method = view.getUint16(at + 10, true);
    const crc = view.getUint32(at + 16, true);
    const size = view.getUint32(at + 20, true);
    if (method !== 0 || view.getUint32(at + 24, true) !== size) throw new Error(`entry ${i}: compressed (method ${method})`);
    const nameLength = view.getUint16(at + 28, true);
    const skip = nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    const name = Buffer.from(file.subarray(at + 46, at + 46 + nameLength)).toString('utf8');
    const local = view.getUint32(at + 42, true);
    if (view.getUint32(local, true) !== 0x04034b50) throw new Error(`${name}: bad local header`);
    if (Buffer.from(file.subarray(local + 30, local + 30 + view.getUint16(local + 26, true))).toString('utf8') !== name) throw new Error(`${name}: local header names another file`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const npy = file.subarray(start, start + size);
    if (crc32(npy) !== crc) throw new Error(`${name}: CRC-32 mismatch`);
    out.set(name.replace(/\.npy$/, ''), parseNpy(npy));
    at += 46 + skip;
  }
  return out;
}

function parseNpy(npy: Uint8Array): NpyEntry {
  if (Buffer.from(npy.subarray(0, 8)).toString('latin1') !== '\x93NUMPY\x01\x00') throw new Error('not a version 1.0 .npy');
  const headerLength = npy[8] | (npy[9] << 8);
  const header = Buffer.from(npy.subarray(10, 10 + headerLength)).toString('latin1');
  const m = /^\{'descr': '([^']+)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \} *\n$/.exec(header);
  if (m === null) throw new Error(`unexpected .npy header ${JSON.stringify(header)}`);
  return { descr: m[1], shape: m[2].split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number), npy, data: npy.subarray(10 + headerLength) };
}
