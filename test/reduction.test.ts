/**
 * DESIGN.md: the reduced gradient (sum of unit gradient sums, over the global batch size) equals
 * the gradient of the mean loss over the whole global batch computed at once in one process.
 */
import { initBackend } from '../src/backend/backend';
import { presetConfig } from '../src/model/config';
import { UNetModel } from '../src/model/unetModel';
import { makeSchedule } from '../src/schedule';
import { UnitGradientComputer } from '../src/training/unitGradients';
import { BatchPlanner } from '../src/training/batchPlan';
import { OrderedReducer } from '../src/training/reduce';
import { WorkUnit } from '../src/training/workUnit';
import { relativeL2 } from './helpers/numeric';

const BATCH = 12;

function unitsOf(unitSize: number, pixels: Uint8Array): WorkUnit[] {
  const planner = new BatchPlanner({ seed: 5, datasetSize: 40, batchSize: BATCH, unitSize, timesteps: 1000, flip: true });
  return planner.plan(4).map((p) => {
    const unitPixels = new Uint8Array(p.indices.length * 64);
    p.indices.forEach((idx, i) => unitPixels.set(pixels.subarray(idx * 64, (idx + 1) * 64), i * 64));
    return { step: 4, unitId: p.unitId, count: p.indices.length, pixels: unitPixels, timesteps: p.timesteps, noiseSeeds: p.noiseSeeds, flips: p.flips, dropoutSeed: p.dropoutSeed };
  });
}

describe('reduction over work units', () => {
  it('equals the gradient of the mean loss over the whole global batch to float tolerance', async () => {
    await initBackend('wasm');
    const model = new UNetModel(presetConfig('tiny'));
    const flat = model.initialParams(11, { noZeroInit: true });
    const computer = new UnitGradientComputer(model, makeSchedule('linear', 1000), { prediction: 'eps', snrGamma: 0 });
    computer.setParams(flat, 0);
    const pixels = new Uint8Array(40 * 64).map((_, i) => (i * 53 + 7) % 256);

    const whole = await computer.compute(unitsOf(BATCH, pixels)[0]);
    const parts = unitsOf(3, pixels);
    expect(parts).toHaveLength(4);
    const reducer = new OrderedReducer(parts.length, model.size);
    for (const unit of parts) reducer.add(await computer.compute(unit));
    const reduced = reducer.finish();

    const expected = whole.gradSum.map((g) => g / BATCH);
    expect(expected.some((g) => g !== 0)).toBe(true);
    expect(relativeL2(reduced.meanGrad, expected)).toBeLessThan(1e-5);
    expect(reduced.meanLoss).toBeCloseTo(whole.lossSum / BATCH, 6);
    expect(reduced.examples).toBe(BATCH);
    computer.dispose();
  });
});
