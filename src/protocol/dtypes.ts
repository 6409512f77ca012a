/**
 * Tensor frame encodings. float32 frames are the typed array's own bytes (no copy); float16 and
 * bfloat16 halve the bytes on the wire at a precision cost (proto/README.md, "Transport dtypes").
 */
import { ddpm } from './generated/ddpm';

export const DType = ddpm.v1.DType;
export type DType = ddpm.v1.DType;

export const TRANSPORT_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type TransportDtype = (typeof TRANSPORT_DTYPES)[number];

export function transportDtypeCode(name: TransportDtype): DType {
  switch (name) {
    case 'float32':
      return DType.FLOAT32;
    case 'float16':
      return DType.FLOAT16;
    case 'bfloat16':
      return DType.BFLOAT16;
    default: {
      const never: never = name;
      throw new RangeError(`unknown transport dtype "${String(never)}" (allowed: ${TRANSPORT_DTYPES.join(', ')})`);
    }
  }
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case DType.FLOAT32:
    case DType.INT32:
    case DType.UINT32:
      return 4;
    case DType.FLOAT16:
    case DType.BFLOAT16:
      return 2;
    case DType.UINT8:
      return 1;
    default:
      return 0;
  }
}

export function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A typed view of a frame; copies only when the frame is not 4-byte aligned. */
function aligned(frame: Uint8Array): ArrayBuffer {
  if (frame.byteOffset % 4 === 0) return frame.buffer as ArrayBuffer;
  // Not frame.slice(): on a Buffer that is a view, not a copy.
  const copy = new Uint8Array(frame.byteLength);
  copy.set(frame);
  return copy.buffer;
}

export function float32View(frame: Uint8Array): Float32Array {
  const buf = aligned(frame);
  return new Float32Array(buf, buf === frame.buffer ? frame.byteOffset : 0, frame.byteLength / 4);
}

export function int32View(frame: Uint8Array): Int32Array {
  const buf = aligned(frame);
  return new Int32Array(buf, buf === frame.buffer ? frame.byteOffset : 0, frame.byteLength / 4);
}

export function uint32View(frame: Uint8Array): Uint32Array {
  const buf = aligned(frame);
  return new Uint32Array(buf, buf === frame.buffer ? frame.byteOffset : 0, frame.byteLength / 4);
}

/** float32 -> bfloat16 with round-to-nearest-even (NaN kept NaN). */
export function toBfloat16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  bfloat16Range(src, out, 0, src.length);
  return out;
}

/** out[i] = bfloat16(src[i]) for i in [lo, hi). */
function bfloat16Range(src: Float32Array, out: Uint16Array, lo: number, hi: number): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = lo; i < hi; i++) {
    const b = bits[i];
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}

export function fromBfloat16(src: Uint16Array): Float32Array {
  return bfloat16ToFloat32(src) as Float32Array;
}

/** The conversion, and (checkFinite) undefined if any value is NaN or infinite, in one pass. */
function bfloat16ToFloat32(src: Uint16Array, checkFinite = false): Float32Array | undefined {
  const n = src.length;
  const out = new Uint32Array(n);
  // Bit 15 of a 16-bit lane of `special` is set once a value had an all-ones exponent:
  // (h & 0x7f80) + 0x80 carries into it exactly then.
  let special = 0;
  let i = 0;
  if (src.byteOffset % 4 === 0) {
    // Two values per 32-bit read (1.3-1.5x faster); the low lane is the first (little-endian).
    const pairs = new Uint32Array(src.buffer, src.byteOffset, n >> 1);
    for (let j = 0; j < pairs.length; j++) {
      const w = pairs[j];
      special |= (w & 0x7f807f80) + 0x00800080;
      out[2 * j] = w << 16;
      out[2 * j + 1] = w & 0xffff0000;
    }
    i = pairs.length * 2;
  }
  for (; i < n; i++) {
    const h = src[i];
    special |= (h & 0x7f80) + 0x80;
    out[i] = h << 16;
  }
  return checkFinite && (special & 0x80008000) !== 0 ? undefined : new Float32Array(out.buffer);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** float32 -> IEEE binary16, round to nearest even; overflow to infinity. */
export function toFloat16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  float16Range(src, out, 0, src.length);
  return out;
}

/** out[i] = binary16(src[i]) for i in [lo, hi). */
function float16Range(src: Float32Array, out: Uint16Array, lo: number, hi: number): void {
  for (let i = lo; i < hi; i++) {
    f32[0] = src[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    let e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      // Subnormal half: |v| * 2^24 is exact in a double; round half to even.
      out[i] = sign | roundHalfEven(Math.abs(src[i]) * 16777216);
      continue;
    }
    const rounded = mant + 0xfff + ((mant >>> 13) & 1);
    if (rounded & 0x800000) {
      mant = 0;
      e += 1;
      if (e >= 0x1f) {
        out[i] = sign | 0x7c00;
        continue;
      }
    } else {
      mant = rounded;
    }
    out[i] = sign | (e << 10) | (mant >>> 13);
  }
}

export function fromFloat16(src: Uint16Array): Float32Array {
  return float16ToFloat32(src) as Float32Array;
}

/** The conversion, and (checkFinite) undefined if any value is NaN or infinite, in one pass. */
function float16ToFloat32(src: Uint16Array, checkFinite = false): Float32Array | undefined {
  const out = new Float32Array(src.length);
  let special = false;
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) special = true;
    out[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return checkFinite && special ? undefined : out;
}

/**
 * Encodes elements [lo, hi) of a float32 vector into `frame`, a whole vector's frame in a
 * transport dtype, with the same bytes as encodeFloats: for filling one frame in slices (the
 * coordinator's update threads write the next step's parameters as they compute them).
 */
export function encodeFloatsRange(values: Float32Array, dtype: DType, frame: Uint8Array, lo: number, hi: number): void {
  const n = frame.byteLength / bytesPerElement(dtype);
  if (n !== values.length) throw new RangeError(`frame holds ${n} values, the vector ${values.length}`);
  switch (dtype) {
    case DType.FLOAT32:
      new Float32Array(frame.buffer, frame.byteOffset, n).set(values.subarray(lo, hi), lo);
      return;
    case DType.FLOAT16:
      return float16Range(values, new Uint16Array(frame.buffer, frame.byteOffset, n), lo, hi);
    case DType.BFLOAT16:
      return bfloat16Range(values, new Uint16Array(frame.buffer, frame.byteOffset, n), lo, hi);
    default:
      throw new RangeError(`dtype ${dtype} is not a float transport dtype`);
  }
}

/** Encodes a float32 vector in a transport dtype. */
export function encodeFloats(values: Float32Array, dtype: DType): Buffer {
  switch (dtype) {
    case DType.FLOAT32:
      return bytesOf(values);
    case DType.FLOAT16:
      return bytesOf(toFloat16(values));
    case DType.BFLOAT16:
      return bytesOf(toBfloat16(values));
    default:
      throw new RangeError(`dtype ${dtype} is not a float transport dtype`);
  }
}

/** Sum of the values: finite exactly when every value is (float32 magnitudes cannot overflow a
 * double sum). Four sums: one chains every add on the last (2.5x slower on 35.7M values). */
function allFinite(values: Float32Array): boolean {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n4 = values.length & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    s0 += values[i];
    s1 += values[i + 1];
    s2 += values[i + 2];
    s3 += values[i + 3];
  }
  for (; i < values.length; i++) s0 += values[i];
  return Number.isFinite(s0 + s1 + s2 + s3);
}

/** A float frame as float32 (a view when it already is float32); with checkFinite, undefined if
 * any value is NaN or infinite (16-bit frames are checked on their own bits in the conversion). */
function decodeFrame(frame: Uint8Array, dtype: DType, checkFinite: boolean): Float32Array | undefined {
  switch (dtype) {
    case DType.FLOAT32: {
      const values = float32View(frame);
      return !checkFinite || allFinite(values) ? values : undefined;
    }
    case DType.FLOAT16:
    case DType.BFLOAT16: {
      const src = new Uint16Array(aligned(frame), frame.byteOffset % 4 === 0 ? frame.byteOffset : 0, frame.byteLength / 2);
      return dtype === DType.FLOAT16 ? float16ToFloat32(src, checkFinite) : bfloat16ToFloat32(src, checkFinite);
    }
    default:
      throw new RangeError(`dtype ${dtype} is not a float transport dtype`);
  }
}

/** decodeFloats, or undefined if any value is NaN or infinite: what a received frame must pass. */
export function decodeFiniteFloats(frame: Uint8Array, dtype: DType): Float32Array | undefined {
  return decodeFrame(frame, dtype, true);
}

/** Decodes a float frame into float32 (a view when it already is float32). */
export function decodeFloats(frame: Uint8Array, dtype: DType): Float32Array {
  return decodeFrame(frame, dtype, false) as Float32Array;
}
