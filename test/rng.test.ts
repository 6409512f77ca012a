/**
 * The noise generator of proto/README.md ("Noise and augmentation"), which every worker must
 * reproduce bit for bit: reference values from an independent Python implementation of that text
 * (integers exact; gaussians rounded to float32), and the bulk draw that workers use for a unit's
 * noise (gaussianFloat32, the generator inlined) against one nextGaussian() at a time.
 */
import { Rng } from '../src/rng/rng';

describe('Rng against the protocol text (reference values from a Python implementation of it)', () => {
  it('xoshiro128** words from Rng(12345)', () => {
    const rng = new Rng(12345);
    expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([518667457, 440444462, 4232892992, 3757857622]);
  });

  it.each([
    [7, [-0.6925843954086304, 0.2302679866552353, -1.287024974822998, -0.10708196461200714, -1.7702630758285522, -0.76734459400177, -0.023164786398410797]],
    [0xdeadbeef, [-0.31764841079711914, 1.199703574180603, 0.6261523365974426, 1.0775961875915527, 1.2440197467803955]],
  ])('Box-Muller gaussians from Rng(%i), rounded to float32', (seed, expected) => {
    expect(Array.from(new Rng(seed).gaussianFloat32(expected.length))).toEqual(expected);
  });
});

describe('gaussianFloat32 (inlined) against nextGaussian() one at a time', () => {
  it.each([0, 1, 2, 3, 1000, 3073])('%i values, then both generators go on alike', (n) => {
    const bulk = new Rng(99);
    const single = new Rng(99);
    const values = bulk.gaussianFloat32(n);
    expect(Buffer.from(values.buffer).equals(Buffer.from(Float32Array.from({ length: n }, () => single.nextGaussian()).buffer))).toBe(true);
    // An odd count leaves the pair's second value as the spare: the next draw must return it.
    expect([bulk.nextGaussian(), bulk.nextGaussian(), bulk.nextUint32()]).toEqual([single.nextGaussian(), single.nextGaussian(), single.nextUint32()]);
  });

  it('starts with a spare left by an earlier odd draw', () => {
    const bulk = new Rng(5);
    const single = new Rng(5);
    bulk.nextGaussian();
    single.nextGaussian();
    const values = bulk.gaussianFloat32(10);
    expect(Array.from(values)).toEqual(Array.from(Float32Array.from({ length: 10 }, () => single.nextGaussian())));
  });
});
