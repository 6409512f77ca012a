/**
 * A worker reads its next WORK message while a unit computes and makes that unit's images and
 * noise then (on a GPU, while the device works; src/worker/worker.ts readAhead). A real
 * coordinator executor and a real worker over ZeroMQ on loopback, the cpu backend: the units
 * were prepared ahead, and every unit's result is the bits of the unit computed alone.
 */
import * as tf from '@tensorflow/tfjs-core';
import { RemoteExecutor } from '../src/coordinator/remoteExecutor';
import { StepWork } from '../src/coordinator/executor';
import { presetConfig } from '../src/model/config';
import { UNetModel } from '../src/model/unetModel';
import { DType } from '../src/protocol/dtypes';
import { Rng } from '../src/rng/rng';
import { makeSchedule } from '../src/schedule';
import { TRAIN_DEFAULTS, TrainConfig } from '../src/training/config';
import { UnitGradientComputer } from '../src/training/unitGradients';
import { UnitResult, WorkUnit } from '../src/training/workUnit';
import { ZmqClient, ZmqServer } from '../src/transport/zmq';
import { Worker } from '../src/worker/worker';
import { initTestBackends } from './helpers/backends';

const config: TrainConfig = { ...TRAIN_DEFAULTS, model: presetConfig('tiny'), batchSize: 8, unitSize: 2 };
const model = new UNetModel(config.model);
const UNITS = 4;

beforeAll(async () => {
  await initTestBackends('cpu');
  await tf.setBackend('cpu');
}, 60_000);

function units(step: number): WorkUnit[] {
  const rng = new Rng(step + 1);
  const per = config.model.imageSize * config.model.imageSize * config.model.imageChannels;
  return Array.from({ length: UNITS }, (_, u) => ({
    step, unitId: u, count: 2,
    pixels: Uint8Array.from({ length: 2 * per }, () => rng.nextInt(256)),
    timesteps: Int32Array.from({ length: 2 }, () => rng.nextInt(config.timesteps)),
    noiseSeeds: Uint32Array.from({ length: 2 }, () => rng.nextUint32()),
    flips: Uint8Array.from({ length: 2 }, () => rng.nextInt(2)),
    dropoutSeed: rng.nextUint32(),
  }));
}

it('prepares the units it reads ahead, and each result has the bits of its unit computed alone', async () => {
  const server = new ZmqServer({ lingerMs: 0 });
  await server.bind('tcp://127.0.0.1:0');
  // No reassignment whatever the machine's load: this worker computes in its message thread and
  // has no beacon (a worker process heartbeats from another thread), so it is silent while it computes.
  const executor = new RemoteExecutor({ channel: server, config, parameterCount: model.size, transportDtype: DType.FLOAT32, heartbeatMs: 200, workerTimeoutMs: 600_000, unitDeadlineMs: 600_000 });
  await executor.start();
  const channel = new ZmqClient('reader');
  channel.connect(server.endpoint as string);
  const worker = new Worker({ name: 'reader', backend: 'cpu', channel, heartbeatMs: 200 });
  const running = worker.start();
  try {
    await executor.waitForWorkers(1, 10_000);
    const params = model.initialParams(3, { noZeroInit: true });
    const results: UnitResult[] = [];
    const work: StepWork = { step: 0, paramVersion: 0, params, units: units(0) };
    await executor.run(work, (r) => { results.push(r); return true; });
    expect(results.map((r) => r.unitId).sort()).toEqual([0, 1, 2, 3]);
    // The coordinator keeps a second unit queued at a worker: units after the first are read ahead
    // when they arrived before the unit before them was issued (here most; never the first).
    expect(worker.unitsPrepared).toBeGreaterThanOrEqual(1);
    expect(worker.unitsPrepared).toBeLessThanOrEqual(UNITS - 1);
    const alone = new UnitGradientComputer(model, makeSchedule(config.schedule, config.timesteps), { prediction: config.prediction, snrGamma: config.snrGamma });
    alone.setParams(params, 0);
    try {
      for (const r of results) {
        const expected = await alone.compute(work.units[r.unitId]);
        expect(Buffer.from(r.gradSum.buffer, r.gradSum.byteOffset, r.gradSum.byteLength).equals(Buffer.from(expected.gradSum.buffer))).toBe(true);
        expect(r.lossSum).toBe(expected.lossSum);
      }
    } finally {
      alone.dispose();
    }
  } finally {
    await worker.stop();
    await running.catch(() => undefined);
    await executor.stop();
  }
}, 120_000);
