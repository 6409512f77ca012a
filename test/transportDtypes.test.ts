/** float16 and bfloat16 transport encodings against values worked out by hand (IEEE 754). */
import { DType, decodeFiniteFloats, decodeFloats, encodeFloats, encodeFloatsRange, fromBfloat16, fromFloat16, toBfloat16, toFloat16 } from '../src/protocol/dtypes';

describe('float16 encoding', () => {
  it.each([
    [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
    [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -26, 0x0000], [0, 0x0000], [-0, 0x8000],
    [Infinity, 0x7c00], [-Infinity, 0xfc00],
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    [1 + 2 ** -11, 0x3c00],
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: even is 1 + 2^-9.
    [1 + 3 * 2 ** -11, 0x3c02],
    // A subnormal tie: 1.5 * 2^-24 rounds to 2 * 2^-24.
    [1.5 * 2 ** -24, 0x0002],
  ])('encodes %p as 0x%s', (value, bits) => {
    expect(toFloat16(new Float32Array([value]))[0]).toBe(bits);
  });

  it('keeps NaN a NaN', () => {
    expect(Number.isNaN(fromFloat16(toFloat16(new Float32Array([NaN])))[0])).toBe(true);
  });

  it('round-trips every finite half exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const finite = all.filter((h) => (h & 0x7c00) !== 0x7c00);
    expect(Array.from(toFloat16(fromFloat16(finite)))).toEqual(Array.from(finite));
  });

  it('has a relative error of at most 2^-11 for normal values', () => {
    const values = new Float32Array(1000).map((_, i) => (i - 500) * 0.731 + 0.0137);
    const back = fromFloat16(toFloat16(values));
    values.forEach((v, i) => expect(Math.abs(back[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11));
  });
});

describe('bfloat16 encoding', () => {
  it.each([
    [1, 0x3f80], [-2, 0xc000], [3.140625, 0x4049],
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
    [1 + 2 ** -8, 0x3f80],
    // 1 + 3 * 2^-8 ties to 1 + 2^-6 (even).
    [1 + 3 * 2 ** -8, 0x3f82],
    [Infinity, 0x7f80],
  ])('encodes %p as 0x%s', (value, bits) => {
    expect(toBfloat16(new Float32Array([value]))[0]).toBe(bits);
  });

  it('keeps NaN a NaN (no rounding into infinity)', () => {
    expect(Number.isNaN(fromBfloat16(toBfloat16(new Float32Array([NaN])))[0])).toBe(true);
  });

  it('decodes by hand-worked bits, from a 4-byte-aligned array (read in pairs) and from one at offset 2', () => {
    const bits = [0x3f80, 0xc000, 0x4049, 0x0001, 0x8000, 0x7f7f, 0xff7f];
    const want = [1, -2, 3.140625, 2 ** -133, -0, 3.3895313892515355e38, -3.3895313892515355e38];
    const backing = new Uint16Array(bits.length + 1);
    for (const offset of [0, 1]) {
      const src = backing.subarray(offset, offset + bits.length);
      src.set(bits);
      expect([offset, Array.from(fromBfloat16(src))]).toEqual([offset, want]);
    }
  });
});

describe('frames', () => {
  it('float32 frames are the array bytes and decode to the same values', () => {
    const v = new Float32Array([1.5, -2.25, 3e-8]);
    const frame = encodeFloats(v, DType.FLOAT32);
    expect(frame.byteLength).toBe(12);
    expect(Array.from(decodeFloats(frame, DType.FLOAT32))).toEqual(Array.from(v));
  });

  it('decodes a float32 frame that starts at an odd byte offset', () => {
    const v = new Float32Array([1.5, -2.25]);
    const backing = Buffer.alloc(9);
    Buffer.from(v.buffer).copy(backing, 1);
    expect(Array.from(decodeFloats(backing.subarray(1), DType.FLOAT32))).toEqual([1.5, -2.25]);
  });

  it.each([DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16])('dtype %p: decodeFiniteFloats gives decodeFloats\'s values, and undefined for NaN, +Inf or -Inf anywhere', (dtype) => {
    // The largest finite value of each format is accepted (its exponent is one below all ones),
    // also in every position at once; 9 values reach each of the float32 check's four running
    // sums and its tail.
    // (bfloat16 rounds float32's largest value up to infinity: 3e38 is below its largest.)
    const big = dtype === DType.FLOAT16 ? 65504 : dtype === DType.BFLOAT16 ? 3e38 : 3.4028234663852886e38;
    const v = new Float32Array([1, -2.5, 0, big, 7, -big, 0.125, 3, -1]);
    const frame = encodeFloats(v, dtype);
    expect(Array.from(decodeFiniteFloats(frame, dtype) ?? [])).toEqual(Array.from(decodeFloats(frame, dtype)));
    expect(decodeFiniteFloats(encodeFloats(new Float32Array(9).fill(big), dtype), dtype)).toBeDefined();
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (let at = 0; at < v.length; at++) {
        const w = v.slice();
        w[at] = bad;
        expect([bad, at, decodeFiniteFloats(encodeFloats(w, dtype), dtype)]).toEqual([bad, at, undefined]);
      }
    }
  });

  it.each([DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16])('dtype %p: a frame filled in slices by encodeFloatsRange has encodeFloats\'s bytes', (dtype) => {
    const v = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 10 ** ((i % 11) - 5));
    const frame = new Uint8Array(v.length * (dtype === DType.FLOAT32 ? 4 : 2));
    for (const [lo, hi] of [[0, 300], [300, 301], [301, 1001]]) encodeFloatsRange(v, dtype, frame, lo, hi);
    expect(Buffer.compare(Buffer.from(frame), encodeFloats(v, dtype))).toBe(0);
  });

  it.each([DType.FLOAT16, DType.BFLOAT16])('dtype %p halves the bytes', (dtype) => {
    const v = new Float32Array([1, 2, 3, 4]);
    const frame = encodeFloats(v, dtype);
    expect(frame.byteLength).toBe(8);
    expect(Array.from(decodeFloats(frame, dtype))).toEqual([1, 2, 3, 4]);
  });
});
