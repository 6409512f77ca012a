/** The thread that draws a training run's sample grids (metrics/sampleGrids.ts), so that the
 * coordinator's own thread keeps serving workers while a grid is drawn. */
import { BackendName, initBackend } from '../backend/backend';
import { UNetModel } from '../model/unetModel';
import { makeSchedule } from '../schedule';
import { gridImages } from '../training/generate';
import { serveThread } from '../util/threadPool';
import type { GridJob, GridThreadInit } from '../metrics/sampleGrids';

void serveThread<GridJob, Float32Array>(async (data) => {
  const init = data as GridThreadInit;
  const backend = await initBackend(init.backend as BackendName);
  const model = new UNetModel(init.model);
  const schedule = makeSchedule(init.schedule, init.timesteps);
  return {
    info: backend,
    call: async ({ weights, options }) => {
      const images = await gridImages(model, weights, schedule, options);
      return { value: images, transfer: [images.buffer as ArrayBuffer] };
    },
  };
});
