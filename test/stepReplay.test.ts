/**
 * webgpu steps replayed without tfjs (src/backend/webgpu/stepReplay.ts, stepGraph.ts,
 * stepRecording.ts), on tfjs's real webgpu backend (Dawn on llvmpipe): a replayed unit's gradient
 * and losses have the bits of the same unit computed through tfjs, across unit sizes, parameter
 * changes and timestep tensors; what a replay could not reproduce keeps the step in tfjs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { countDispatches } from '../src/backend/webgpu/dispatchCount';
import { webgpuInternals } from '../src/backend/webgpu/internals';
import { StepRecorder, recordingsDiffer } from '../src/backend/webgpu/stepRecording';
import { StepReplay } from '../src/backend/webgpu/stepReplay';
import { UNetConfig, presetConfig } from '../src/model/config';
import { UNetModel } from '../src/model/unetModel';
import { Rng } from '../src/rng/rng';
import type { UnitGradientComputer } from '../src/training/unitGradients';
import { UnitResult, WorkUnit } from '../src/training/workUnit';
import { ThreadInit } from '../src/worker/computeThreads';
import { gradientComputer } from '../src/worker/unitComputer';
import { initTestBackends } from './helpers/backends';

beforeAll(async () => {
  await initTestBackends('cpu', 'webgpu');
  await tf.setBackend('webgpu');
}, 60_000);

function makeUnit(config: UNetConfig, count: number, seed: number): WorkUnit {
  const rng = new Rng(seed);
  const per = config.imageSize * config.imageSize * config.imageChannels;
  return {
    step: seed, unitId: 0, count,
    pixels: Uint8Array.from({ length: count * per }, () => rng.nextInt(256)),
    timesteps: Int32Array.from({ length: count }, () => rng.nextInt(1000)),
    noiseSeeds: Uint32Array.from({ length: count }, () => rng.nextUint32()),
    flips: Uint8Array.from({ length: count }, () => rng.nextInt(2)),
    dropoutSeed: rng.nextUint32(),
  };
}

/** A computer with the replay on (the default) or off. */
function computer(init: ThreadInit, replay: 'on' | 'off'): UnitGradientComputer {
  const before = process.env.DDPM_WEBGPU_REPLAY;
  process.env.DDPM_WEBGPU_REPLAY = replay;
  try {
    return gradientComputer(init);
  } finally {
    if (before === undefined) delete process.env.DDPM_WEBGPU_REPLAY;
    else process.env.DDPM_WEBGPU_REPLAY = before;
  }
}

function expectSameBits(a: UnitResult, b: UnitResult): void {
  expect(Buffer.from(a.gradSum.buffer).equals(Buffer.from(b.gradSum.buffer))).toBe(true);
  expect(Object.is(a.lossSum, b.lossSum)).toBe(true);
  expect(Array.from(a.lossByBucket)).toEqual(Array.from(b.lossByBucket));
}

describe('a replayed unit against the same unit through tfjs', () => {
  // v-prediction with Min-SNR weights: every kind of timestep tensor (coefficients, target
  // coefficients, weights, the embedding's input) changes with the unit.
  const config = presetConfig('tiny');
  const init: ThreadInit = { backend: 'webgpu', model: config, schedule: 'cosine', timesteps: 1000, prediction: 'v', snrGamma: 5 };
  const model = new UNetModel(config);
  let replayed: UnitGradientComputer;
  let eager: UnitGradientComputer;

  beforeAll(() => {
    replayed = computer(init, 'on');
    eager = computer(init, 'off');
  });
  afterAll(() => {
    replayed.dispose();
    eager.dispose();
  });

  it('the same bits for every unit: sizes 3 then 2 then 3 again, parameters (in shared memory) changed in between (once under a version number seen before); replayed units dispatch nothing through tfjs and leak no tensor', async () => {
    // `version`: other parameters under a version number already seen (a worker that joins a
    // new run keeps its computer when the model is the same; the versions start again).
    const steps: Array<{ count: number; params?: number; version?: number; replays: boolean; learns?: boolean }> = [
      { count: 3, params: 1, replays: false }, { count: 3, replays: false, learns: true },
      { count: 3, replays: true }, { count: 3, params: 2, replays: true },
      { count: 2, replays: false }, { count: 2, params: 3, replays: false, learns: true },
      { count: 2, replays: true }, { count: 3, params: 4, replays: true },
      { count: 3, params: 5, version: 4, replays: true },
    ];
    let seed = 100;
    for (const step of steps) {
      if (step.params !== undefined) {
        // In shared memory, as the coordinator's parameters are when a worker computes in its
        // process beside update threads: Dawn's writeBuffer takes no view of a SharedArrayBuffer.
        const initial = model.initialParams(step.params, { noZeroInit: true });
        const flat = new Float32Array(new SharedArrayBuffer(initial.byteLength));
        flat.set(initial);
        replayed.setParams(flat, step.version ?? step.params);
        eager.setParams(flat, step.version ?? step.params);
      }
      const unit = makeUnit(config, step.count, seed++);
      const tensorsBefore = tf.memory().numTensors;
      const { result, dispatches } = await countDispatches(() => replayed.compute(unit));
      const programs = Object.values(dispatches ?? {}).reduce((a, b) => a + b, 0);
      if (step.replays) {
        expect(programs).toBe(0);
        expect(tf.memory().numTensors).toBe(tensorsBefore);
      } else {
        expect(programs).toBeGreaterThan(100);
      }
      // The second step of a size is learnt: its graph kept, tfjs's pool emptied (its buffers
      // would double the memory; the computer through tfjs then fills it again).
      if (step.learns) expect(webgpuInternals(tf.backend() as unknown as WebGPUBackend).bufferManager.getNumFreeBuffers()).toBe(0);
      expectSameBits(result, await eager.compute(unit));
    }
    expect(replayed.replayStatus).toMatch(/^3: replayed \(\d+ programs, \d+ MiB\); 2: replayed \(\d+ programs, \d+ MiB\)$/);
    expect(eager.replayStatus).toBeUndefined();
  }, 120_000);
});

/** Four units of 2 through a replaying and a tfjs computer: the same bits each time, the third
 * and fourth replayed (no tfjs dispatches); `changed(unit)` alters what the replay must read
 * from the unit, and must change its gradient. */
async function replaysLikeTfjs(config: UNetConfig, unitFor: (seed: number) => WorkUnit, changed: (unit: WorkUnit) => WorkUnit): Promise<void> {
  const init: ThreadInit = { backend: 'webgpu', model: config, schedule: 'linear', timesteps: 1000, prediction: 'eps', snrGamma: 0 };
  const flat = new UNetModel(config).initialParams(7, { noZeroInit: true });
  const replayed = computer(init, 'on');
  const eager = computer(init, 'off');
  try {
    replayed.setParams(flat, 0);
    eager.setParams(flat, 0);
    for (let seed = 0; seed < 4; seed++) {
      const unit = unitFor(seed);
      const { result, dispatches } = await countDispatches(() => replayed.compute(unit));
      expect(dispatches === undefined || Object.keys(dispatches).length === 0).toBe(seed >= 2);
      expectSameBits(result, await eager.compute(unit));
      if (seed === 3) expect(Buffer.from((await replayed.compute(changed(unit))).gradSum.buffer).equals(Buffer.from(result.gradSum.buffer))).toBe(false);
    }
    expect(replayed.replayStatus).toMatch(/^2: replayed \(\d+ programs, \d+ MiB\)$/);
  } finally {
    replayed.dispose();
    eager.dispose();
  }
}

describe('dropout', () => {
  it('a unit with dropout is replayed too (its masks come from a seed tensor made from the unit\'s dropout seed), with tfjs\'s bits', async () => {
    const config: UNetConfig = { ...presetConfig('tiny'), dropout: 0.3 };
    // Another dropout seed: another mask.
    await replaysLikeTfjs(config, (seed) => makeUnit(config, 2, 500 + seed), (unit) => ({ ...unit, dropoutSeed: unit.dropoutSeed + 1 }));
  }, 60_000);
});

describe('a class-conditional model', () => {
  it('is replayed too (the one-hot class rows are a unit tensor of its labels), with tfjs\'s bits', async () => {
    const config: UNetConfig = { ...presetConfig('tiny'), classes: 4 };
    await replaysLikeTfjs(config, (seed) => ({ ...makeUnit(config, 2, 600 + seed), labels: Uint8Array.of(seed, 4 - seed) }), (unit) => ({ ...unit, labels: Uint8Array.of(0, 0) }));
  }, 60_000);
});

describe('what keeps a step in tfjs', () => {
  it('an upload made from the unit that the recording was not told of differs between two recordings; named as an input, it does not', async () => {
    const backend = tf.backend() as unknown as WebGPUBackend;
    const weight = tf.tensor1d(Float32Array.from({ length: 4 }, (_, i) => i + 1));
    const params = [weight];
    const record = (values: number[], named: boolean) => {
      const recorder = new StepRecorder(backend, params, { timesteps: Int32Array.from([1]), dropoutSeed: 0 });
      try {
        const y = tf.tidy(() => {
          const x = tf.tensor1d(values);
          if (named) recorder.nameInput(x, 'x');
          return tf.mul(x, weight);
        });
        const recording = recorder.stop([y]);
        y.dispose();
        expect(recorder.problem).toBeUndefined();
        return recording!;
      } finally {
        recorder.end();
      }
    };
    expect(recordingsDiffer(record([1, 2, 3, 4], false), record([5, 6, 7, 8], false))).toMatch(/an upload that changed with the unit/);
    expect(recordingsDiffer(record([1, 2, 3, 4], true), record([5, 6, 7, 8], true))).toBeUndefined();
    weight.dispose();
  });

  it('a read of a tensor in the middle of the step is named, and the backend is as it was after', async () => {
    const backend = tf.backend() as unknown as WebGPUBackend;
    const own = Object.keys(backend).length;
    const recorder = new StepRecorder(backend, [], { timesteps: Int32Array.from([0]), dropoutSeed: 0 });
    const x = tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4]));
    await x.data();
    expect(recorder.stop([x])).toBeUndefined();
    expect(recorder.problem).toMatch(/a read of a tensor|a buffer copy/);
    expect(Object.keys(backend).length).toBe(own);
    x.dispose();
  });

  it('DDPM_WEBGPU_REPLAY must be on or off: one line naming it', () => {
    expect(() => StepReplay.forBackend({ DDPM_WEBGPU_REPLAY: 'maybe' })).toThrow('DDPM_WEBGPU_REPLAY=maybe is not one of on, off');
  });
});
