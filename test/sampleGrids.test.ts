/**
 * The training run's sample grids (src/metrics/sampleGrids.ts): on wasm and cpu they are drawn on a
 * thread of their own, and must be the grid this thread would draw, while this thread stays free.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/backend';
import { presetConfig } from '../src/model/config';
import { UNetModel } from '../src/model/unetModel';
import { makeSchedule } from '../src/schedule';
import { gridImages } from '../src/training/generate';
import { encodeGrid } from '../src/cli/grid';
import { PeriodicSampler, sampleGridPath } from '../src/metrics/sampleGrids';

let dir: string;
beforeAll(async () => {
  await initBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddpm-grids-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('PeriodicSampler on the cpu backend', () => {
  it('draws on its own thread the grid this thread draws, byte for byte, for a class-conditional model too; none of its kernels on this thread', async () => {
    for (const classes of [0, 3]) {
      const model = new UNetModel({ ...presetConfig('tiny'), classes });
      const schedule = makeSchedule('linear', 1000);
      const weights = model.initialParams(7);
      const written: string[] = [];
      const sampler = new PeriodicSampler({
        model, schedule, backend: 'cpu', prediction: 'eps', checkpointDir: path.join(dir, `c${classes}`), every: 5, n: 6,
        sampler: 'ddim', steps: 10, guidance: 2, log: () => undefined, onWritten: (file) => written.push(file),
      });
      // No kernel of the grid runs on this thread: it stays free for the coordinator's work.
      const profile = await tf.profile(async () => {
        sampler.maybeStart(4, weights); // not due
        sampler.maybeStart(5, weights);
        await sampler.idle();
      });
      expect(profile.kernels).toHaveLength(0);
      await sampler.stop();
      await sampler.stop(); // idempotent
      expect(written).toEqual([sampleGridPath(path.join(dir, `c${classes}`), 5)]);
      const here = encodeGrid(await gridImages(model, weights, schedule, { n: 6, sampler: 'ddim', steps: 10, prediction: 'eps', guidance: 2 }), 6, model.config);
      expect(Buffer.compare(fs.readFileSync(written[0]), here)).toBe(0);
    }
  }, 60_000);
});
