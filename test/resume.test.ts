/**
 * The resume contract (DESIGN.md, RELIABILITY.md item 12): on the cpu backend, 2k steps in one run
 * equal k steps, stop, resume in a new Coordinator, k more steps, bit for bit: parameters, EMA,
 * Adam moments, per-step losses. And the order in which units are computed and delivered, or a
 * duplicate delivery, changes nothing.
 *
 * Single-process training is the Coordinator with an InProcessExecutor (no sockets); the run
 * (test/helpers/trainFixture.ts: tiny model with dropout, flips, a cosine learning rate falling
 * across the resume point, weight decay, an epoch boundary inside a batch) checkpoints after every
 * step; the first half is stopped as SIGTERM stops a run, so it has the whole run's schedule. Each run is its own Node process
 * (tfjs's cpu kernels are ~10x slower inside Jest's vm context, see helpers/childProcess.ts), so the
 * resumed run is also a fresh process, as after a real restart. States are compared through the
 * checkpoints, whose exactness test/checkpoint.test.ts establishes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCheckpointDir } from '../src/checkpoint/store';
import { stepDirName } from '../src/checkpoint/format';
import { UNetModel } from '../src/model/unetModel';
import { OptimizerState } from '../src/training/optimizer';
import { bundleHelper, runNode } from './helpers/childProcess';
import { ExecutorKind, RESUME_CONFIG, TrainOutcome } from './helpers/trainFixture';

const K = RESUME_CONFIG.steps / 2;
const specs = new UNetModel(RESUME_CONFIG.model).specs;

let tmp: string;
let child: string;
let straight: TrainOutcome;
let first: TrainOutcome;
let resumed: TrainOutcome;
let reversed: TrainOutcome;
let twice: TrainOutcome;

/** A run of RESUME_CONFIG's 2K steps, stopped after `stopAfter` if given (as SIGTERM does). */
async function train(dir: string, stopAfter: number | undefined, resume: boolean, executor: ExecutorKind): Promise<TrainOutcome> {
  const out = await runNode(child, [JSON.stringify({ dir: path.join(tmp, dir), stopAfter, resume, executor })]);
  return JSON.parse(out) as TrainOutcome;
}

const stateAt = (dir: string, step: number): OptimizerState => loadCheckpointDir(path.join(tmp, dir, stepDirName(step)), specs).state;

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function expectIdentical(actual: OptimizerState, expected: OptimizerState): void {
  expect(actual.step).toBe(expected.step);
  for (const field of ['params', 'ema', 'adamM', 'adamV'] as const) {
    if (Buffer.compare(bytes(actual[field]), bytes(expected[field])) !== 0) {
      const i = actual[field].findIndex((v, j) => !Object.is(v, expected[field][j]));
      throw new Error(`${field} differs at step ${actual.step}: first at [${i}], ${actual[field][i]} vs ${expected[field][i]}`);
    }
  }
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-resume-test-'));
  child = bundleHelper('trainRunChild.ts', tmp);
  // Two at a time (2 cores): the straight run beside the first half; then the second half of the
  // split run, in a NEW process and Coordinator, beside the order tests.
  [straight, first] = await Promise.all([train('straight', undefined, false, 'in-process'), train('split', K, false, 'in-process')]);
  [resumed, reversed, twice] = await Promise.all([
    train('split', undefined, true, 'in-process'),
    train('reversed', 2, false, 'reversed'),
    train('twice', 1, false, 'reversed-twice'),
  ]);
}, 240_000);

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe(`${2 * K} steps straight vs ${K} steps, stop, resume, ${K} steps (cpu backend)`, () => {
  it('the resumed run really starts from the step-3 checkpoint', () => {
    expect(resumed.logs.some((l) => /resumed from .*step-00000003 at step 3/.test(l))).toBe(true);
    expect(first.steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(resumed.steps.map((s) => s.step)).toEqual([4, 5, 6]);
    expect(resumed.finalStep).toBe(2 * K);
  });

  it('ends with bit-identical params, EMA and Adam moments', () => {
    expectIdentical(stateAt('split', 2 * K), stateAt('straight', 2 * K));
  });

  it('is identical after every step, not only at the end', () => {
    for (let step = 1; step <= 2 * K; step++) expectIdentical(stateAt('split', step), stateAt('straight', step));
  });

  it('is not trivially equal: the parameters keep changing and differ from the EMA', () => {
    const end = stateAt('straight', 2 * K);
    expect(Buffer.compare(bytes(end.params), bytes(stateAt('straight', K).params))).not.toBe(0);
    expect(Buffer.compare(bytes(end.params), bytes(end.ema))).not.toBe(0);
    expect(end.adamV.some((v) => v > 0)).toBe(true);
  });

  it('reports the same loss, gradient norm and learning rate for every step', () => {
    expect([...first.steps, ...resumed.steps]).toEqual(straight.steps);
    expect(straight.steps.every((s) => Number.isFinite(s.loss) && s.examples === 8)).toBe(true);
    // Warm-up over 2 steps, then a half cosine to 0 at step 6: the rate falls across the resume point.
    // lr = 1e-3 * (step + 1) / 2, then 1e-3 * (1 + cos(pi (step - 2) / 4)) / 2 before each update.
    const expected = [0.5e-3, 1e-3, 1e-3, 0.8535533905932737e-3, 0.5e-3, 0.1464466094067262e-3];
    straight.steps.forEach((s, i) => expect(s.learningRate).toBeCloseTo(expected[i], 15));
  });

  it('writes byte-identical weight and optimizer files at the last step', () => {
    for (const file of ['model.bin', 'ema.bin', 'optimizer.bin']) {
      const a = fs.readFileSync(path.join(tmp, 'straight', stepDirName(2 * K), file));
      const b = fs.readFileSync(path.join(tmp, 'split', stepDirName(2 * K), file));
      expect(Buffer.compare(a, b)).toBe(0);
    }
  });
});

describe('unit order and duplicate deliveries', () => {
  it('computing and delivering the units in reverse order gives identical parameters and losses', () => {
    expect(reversed.computedOrder).toEqual([1, 0, 1, 0]);
    expectIdentical(stateAt('reversed', 2), stateAt('straight', 2));
    expect(reversed.steps).toEqual(straight.steps.slice(0, 2));
  });

  it('a result delivered twice is rejected the second time and counted once', () => {
    expect(twice.accepted).toEqual([true, false, true, false]);
    expectIdentical(stateAt('twice', 1), stateAt('straight', 1));
    expect(twice.steps[0].examples).toBe(8);
  });
});
