/** `ddpm sample`: a PNG grid from a checkpoint. */
import type { CommandModule } from 'yargs';
import { BackendName, initBackend } from '../backend/backend';
import { loadCheckpointArg, readCheckpointConfig, resolveCheckpointDir } from '../checkpoint/store';
import { UNetModel } from '../model/unetModel';
import { makeSchedule } from '../schedule';
import { SAMPLER_NAMES, SamplerName, VARIANCE_NAMES, VarianceName } from '../diffusion/samplers';
import { generateImages } from '../training/generate';
import { writeGrid } from './grid';
import { withBackendOption } from './options';
import { UsageError } from './errors';

interface SampleArgs {
  checkpoint: string;
  ema: boolean;
  sampler: string;
  steps: number;
  eta: number;
  variance: string;
  n: number;
  seed: number;
  out: string;
  backend: string;
}

export const sampleCommand: CommandModule<object, SampleArgs> = {
  command: 'sample',
  describe: 'generate a PNG grid of images from a checkpoint',
  builder: (y) => withBackendOption(y)
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (a run directory uses its latest)' })
    .option('ema', { type: 'boolean', default: false, describe: 'use the EMA weights' })
    .option('sampler', { type: 'string', choices: SAMPLER_NAMES, default: 'ddim' })
    .option('steps', { type: 'number', default: 50, describe: 'DDIM steps' })
    .option('eta', { type: 'number', default: 0, describe: 'DDIM eta (0 = deterministic)' })
    .option('variance', { type: 'string', choices: VARIANCE_NAMES, default: 'fixed-small', describe: 'DDPM variance' })
    .option('n', { type: 'number', default: 64, describe: 'number of images' })
    .option('seed', { type: 'number', default: 1 })
    .option('out', { type: 'string', default: 'grid.png', describe: 'output PNG' }) as never,
  handler: async (a) => {
    const backend = await initBackend(a.backend as BackendName, (l) => process.stderr.write(`${l}\n`));
    process.stderr.write(`backend: ${backend}\n`);
    if (!(Number.isInteger(a.n) && a.n >= 1)) throw new UsageError(`--n must be a positive integer, got ${a.n}`);
    const dir = resolveCheckpointDir(a.checkpoint);
    const model = new UNetModel(readCheckpointConfig(dir).model);
    const loaded = loadCheckpointArg(a.checkpoint, model.specs, (l) => process.stderr.write(`${l}\n`));
    const schedule = makeSchedule(loaded.config.schedule, loaded.config.timesteps);
    const images = await generateImages(model, a.ema ? loaded.state.ema : loaded.state.params, schedule, {
      n: a.n, seed: a.seed, sampler: a.sampler as SamplerName, steps: a.steps, eta: a.eta, variance: a.variance as VarianceName, prediction: loaded.config.prediction,
    });
    writeGrid(a.out, images, a.n, model.config);
    process.stderr.write(`wrote ${a.out}: ${a.n} samples from ${loaded.dir} (step ${loaded.state.step}${a.ema ? ', EMA' : ''})\n`);
  },
};
