/** The .npz writer and reader (src/data/npz.ts) against numpy's own output and the CRC-32 standard. */
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';
import { crc32, decodeNpz, decodeStrings, encodeNpz, npzSize } from '../src/data/npz';


// np.savez(f, arr_0=np.arange(18, dtype=np.uint8).reshape(2, 3, 3, 1) * 13, arr_1=np.array([3, 7], dtype=np.int64)), numpy 2.4.
const NUMPY_FILE = path.join(__dirname, 'reference', 'numpy_savez.npz');
const images = Uint8Array.from({ length: 18 }, (_, i) => i * 13);
const labels = BigInt64Array.from([3n, 7n]);
const ours = () => encodeNpz([{ name: 'arr_0', array: { data: images, shape: [2, 3, 3, 1] } }, { name: 'arr_1', array: { data: labels, shape: [2] } }]);

describe('crc32', () => {
  it('gives the check value of the standard ("123456789" -> cbf43926) and the CRCs pngjs writes into a PNG', () => {
    expect(crc32(Buffer.from('123456789', 'latin1')).toString(16)).toBe('cbf43926');
    const png = PNG.sync.write(Object.assign(new PNG({ width: 5, height: 3 }), { data: Buffer.alloc(60, 77) }));
    let chunks = 0;
    for (let at = 8; at < png.length; chunks++) {
      const length = png.readUInt32BE(at);
      expect(crc32(png.subarray(at + 4, at + 8 + length))).toBe(png.readUInt32BE(at + 8 + length));
      at += 12 + length;
    }
    expect(chunks).toBeGreaterThanOrEqual(3); // IHDR, IDAT, IEND
  });
});

describe('unicode string arrays (class names)', () => {
  // np.savez(f, images, np.array([0, 2, 2]), class_names=np.array(['cat', 'dög', '\U0001F426bird'])), numpy 1.24: dtype <U5.
  const NAMES_FILE = path.join(__dirname, 'reference', 'numpy_class_names.npz');
  const names = ['cat', 'dög', '\u{1F426}bird'];

  it('are read as numpy wrote them, and written as the same .npy bytes', () => {
    const numpy = decodeNpz(fs.readFileSync(NAMES_FILE));
    expect([...numpy.keys()]).toEqual(['class_names', 'arr_0', 'arr_1']);
    expect(numpy.get('class_names')).toMatchObject({ descr: '<U5', shape: [3] });
    expect(decodeStrings(numpy.get('class_names')!)).toEqual(names);
    const mine = decodeNpz(encodeNpz([{ name: 'class_names', array: { data: names, shape: [3] } }]));
    expect(Buffer.compare(Buffer.from(mine.get('class_names')!.npy), Buffer.from(numpy.get('class_names')!.npy))).toBe(0);
  });
});

describe('encodeNpz', () => {
  it('decodeNpz reads numpy\'s own file as numpy wrote it', () => {
    const numpy = decodeNpz(fs.readFileSync(NUMPY_FILE));
    expect([...numpy.keys()]).toEqual(['arr_0', 'arr_1']);
    expect(numpy.get('arr_0')).toMatchObject({ descr: '|u1', shape: [2, 3, 3, 1] });
    expect(Array.from(numpy.get('arr_0')!.data)).toEqual(Array.from(images));
    expect(numpy.get('arr_1')).toMatchObject({ descr: '<i8', shape: [2] });
    expect(Array.from(new BigInt64Array(Uint8Array.from(numpy.get('arr_1')!.data).buffer))).toEqual([3n, 7n]);
  });

  it('writes the same .npy members as numpy, byte for byte, in a zip whose CRCs and directory check out', () => {
    const numpy = decodeNpz(fs.readFileSync(NUMPY_FILE));
    const mine = decodeNpz(ours());
    for (const name of ['arr_0', 'arr_1']) expect(Buffer.compare(Buffer.from(mine.get(name)!.npy), Buffer.from(numpy.get(name)!.npy))).toBe(0);
    // Headers pad the data to 64 bytes, as numpy's do.
    expect(mine.get('arr_0')!.npy.length - images.length).toBe(128);
  });

  it('gives the same bytes for the same arrays (no clock in the file), and npzSize its exact size', () => {
    expect(Buffer.compare(Buffer.from(ours()), Buffer.from(ours()))).toBe(0);
    expect(npzSize([{ name: 'arr_0', bytes: 18 }, { name: 'arr_1', bytes: 16 }])).toBe(ours().length);
  });

  it('decodeNpz refuses a damaged file, naming what is wrong', () => {
    const bytes = Uint8Array.from(ours());
    bytes[30 + 'arr_0.npy'.length + 128 + 5] ^= 0xff; // inside arr_0's data
    expect(() => decodeNpz(bytes)).toThrow('arr_0.npy: CRC-32 mismatch');
    expect(() => decodeNpz(ours().subarray(0, 100))).toThrow('no end-of-central-directory record');
  });

  it('refuses data that does not fit the shape', () => {
    expect(() => encodeNpz([{ name: 'arr_0', array: { data: images, shape: [2, 3, 3, 2] } }])).toThrow('encodeNpy: 18 values for shape (2, 3, 3, 2)');
  });
});
