/**
 * Deterministic optimizer states for checkpoint tests, built from raw float32 bit patterns (so a
 * round trip through any float conversion would show), plus the comparison the tests use.
 * Pure TypeScript without tfjs: test/helpers/checkpointSaveChild.ts bundles it into a child process.
 */
import type { ParamSpec } from '../../src/model/paramSpecs';
import type { OptimizerState } from '../../src/training/optimizer';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../src/training/config';
import { presetConfig } from '../../src/model/config';

export const FIXTURE_CONFIG: TrainConfig = { ...TRAIN_DEFAULTS, model: presetConfig('tiny'), batchSize: 8, unitSize: 4, steps: 100 };

/** A small parameter list (25,250 floats, 101,000 bytes per weight file) for the child process. */
export const CHILD_SPECS: ParamSpec[] = [
  { name: 'dense/kernel', shape: [101, 250], init: 'fanAvg' },
  { name: 'dense/bias', shape: [250], init: 'zero' },
];

export function specsSize(specs: readonly ParamSpec[]): number {
  return specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/** Finite float32 values from random bit patterns, with -0, the smallest subnormal and the largest float. */
export function fixtureFloats(n: number, seed: number): Float32Array {
  const bits = new Uint32Array(n);
  let x = (seed * 0x9e3779b9 + 0x7f4a7c15) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    // Exponent 0xff would be Inf/NaN: clear its lowest bit to stay finite.
    bits[i] = (x & 0x7f800000) === 0x7f800000 ? x & ~0x00800000 : x;
  }
  if (n > 3) {
    bits[0] = 0x80000000; // -0
    bits[1] = 0x00000001; // smallest subnormal
    bits[2] = 0x7f7fffff; // largest finite float32
  }
  return new Float32Array(bits.buffer);
}

/** The state saved at `step` in the tests: every array distinct, all derived from the step. */
export function fixtureState(step: number, n: number): OptimizerState {
  return {
    params: fixtureFloats(n, step * 4 + 1),
    ema: fixtureFloats(n, step * 4 + 2),
    adamM: fixtureFloats(n, step * 4 + 3),
    adamV: fixtureFloats(n, step * 4 + 4),
    step,
  };
}

export function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

export function sameState(a: OptimizerState, b: OptimizerState): boolean {
  return a.step === b.step && sameBytes(a.params, b.params) && sameBytes(a.ema, b.ema) && sameBytes(a.adamM, b.adamM) && sameBytes(a.adamV, b.adamV);
}
