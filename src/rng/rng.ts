/**
 * Deterministic random numbers that any worker, on any backend or in any language, reproduces
 * bit for bit (the algorithm is specified in proto/README.md, "Noise and augmentation").
 * Pure TypeScript: 32-bit integer arithmetic only, plus Math.log/sqrt/cos/sin for Box-Muller.
 */

const GOLDEN = 0x9e3779b9;

/** MurmurHash3's 32-bit finaliser. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a key of uint32 words (e.g. [seed, stream, step, index]) to one uint32 seed. */
export function hashKey(...words: number[]): number {
  let h = GOLDEN;
  for (const w of words) {
    if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new RangeError(`rng key word must be a uint32, got ${w}`);
    h = fmix32((h ^ w) + GOLDEN);
  }
  return h;
}

/** xoshiro128** (Blackman & Vigna), seeded from one uint32 through a splitmix32-style sequence. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareGaussian: number | null = null;

  constructor(seed: number) {
    let z = seed >>> 0;
    const next = () => {
      z = (z + GOLDEN) >>> 0;
      return fmix32(z);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  static fromKey(...words: number[]): Rng {
    return new Rng(hashKey(...words));
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits: (a >>> 5) * 2^26 + (b >>> 6), over 2^53. */
  nextFloat64(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n), by rejection so every value is equally likely. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x100000000) throw new RangeError(`nextInt bound must be in [1, 2^32], got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal by Box-Muller: u1 = 1 - U (never 0), pairs (r cos, r sin) used in order. */
  nextGaussian(): number {
    if (this.spareGaussian !== null) {
      const g = this.spareGaussian;
      this.spareGaussian = null;
      return g;
    }
    const u1 = 1 - this.nextFloat64();
    const u2 = this.nextFloat64();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spareGaussian = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /**
   * n standard normals rounded to float32: nextGaussian() n times, with the generator inlined (a
   * worker draws ~200,000 per ch64 unit at batch 64 before its step can start; this takes about
   * three quarters of the time). Same arithmetic in the same order, so the same bits.
   */
  gaussianFloat32(n: number, out = new Float32Array(n)): Float32Array {
    let i = 0;
    if (this.spareGaussian !== null && n > 0) out[i++] = this.nextGaussian();
    let s0 = this.s0;
    let s1 = this.s1;
    let s2 = this.s2;
    let s3 = this.s3;
    const words = new Uint32Array(4);
    for (; i + 1 < n; i += 2) {
      for (let w = 0; w < 4; w++) {
        // nextUint32(), xoshiro128**
        words[w] = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
        const t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 11);
      }
      // nextGaussian(): u1 = 1 - U, u2 = U, each U from two words as nextFloat64()
      const u1 = 1 - ((words[0] >>> 5) * 67108864 + (words[1] >>> 6)) / 9007199254740992;
      const u2 = ((words[2] >>> 5) * 67108864 + (words[3] >>> 6)) / 9007199254740992;
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      out[i] = r * Math.cos(theta);
      out[i + 1] = r * Math.sin(theta);
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    if (i < n) out[i] = this.nextGaussian(); // an odd count: the pair's second is kept as spare
    return out;
  }

  /** Fisher-Yates shuffle of 0..n-1. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = p[i];
      p[i] = p[j];
      p[j] = tmp;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Named streams keep the uses of one run seed apart. */
export const RngStream = {
  init: 1,
  epochPermutation: 2,
  timestep: 3,
  noiseSeed: 4,
  flip: 5,
  dropout: 6,
  sample: 7,
  classDrop: 8,
} as const;
