/** `ddpm sample`: a PNG grid from a checkpoint. */
import type { CommandModule } from 'yargs';
import { BackendName, initBackend } from '../backend/backend';
import { loadModelCheckpoint } from './checkpointArg';
import { makeSchedule } from '../schedule';
import { SAMPLER_NAMES, SamplerName, VARIANCE_NAMES, VarianceName } from '../diffusion/samplers';
import { DEFAULT_GUIDANCE, cyclingLabels, generateImages, guidanceCaveat } from '../training/generate';
import { classCount } from '../model/config';
import { writeGrid } from './grid';
import { checkGuidance, checkOutputDir, checkSamplingSteps, flagGiven, withBackendOption } from './options';
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
  class: string;
  guidance: number;
}

/** --class for a model with `classes` classes: all of them in turn, "no class", or one (by number,
 * or by name where the run's data named its classes), for n images. */
export function sampleLabels(spec: string, classes: number, n: number, names: readonly string[] = []): Uint8Array | undefined {
  if (classes === 0) {
    if (spec !== 'all') throw new UsageError(`--class ${spec}: the checkpoint's model is unconditional (trained without --classes)`);
    return undefined;
  }
  if (spec === 'all') return cyclingLabels(n, classes);
  if (spec === 'none') return new Uint8Array(n).fill(classes);
  const k = names.includes(spec) ? names.indexOf(spec) : Number(spec);
  if (!(spec.trim() !== '' && Number.isInteger(k) && k >= 0 && k < classes)) {
    const named = names.length > 0 ? ` or one of ${names.join(', ')}` : '';
    throw new UsageError(`--class must be all, none or a class in [0, ${classes})${named}, got "${spec}"`);
  }
  return new Uint8Array(n).fill(k);
}

export const sampleCommand: CommandModule<object, SampleArgs> = {
  command: 'sample',
  describe: 'generate a PNG grid of images from a checkpoint',
  builder: (y) => withBackendOption(y)
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (a run directory uses its latest)' })
    .option('ema', { type: 'boolean', default: false, describe: 'use the EMA weights' })
    .option('sampler', { type: 'string', choices: SAMPLER_NAMES, default: 'ddim', describe: 'ddim (--steps, --eta), dpm-solver++ (second-order, --steps: 10-20 suffice) or ddpm (ancestral, every timestep)' })
    .option('steps', { type: 'number', default: 50, describe: 'denoising steps of ddim and dpm-solver++' })
    .option('eta', { type: 'number', default: 0, describe: 'DDIM eta (0 = deterministic)' })
    .option('variance', { type: 'string', choices: VARIANCE_NAMES, default: 'fixed-small', describe: 'DDPM variance' })
    .option('n', { type: 'number', default: 64, describe: 'number of images' })
    .option('seed', { type: 'number', default: 1 })
    .option('class', { type: 'string', default: 'all', describe: 'a class-conditional model\'s class: all (one column each), none (unconditional) or one class, by number or by name' })
    .option('guidance', { type: 'number', default: DEFAULT_GUIDANCE, describe: 'classifier-free guidance scale for a class (1: the conditional model alone)' })
    .option('out', { type: 'string', default: 'grid.png', describe: 'output PNG' }) as never,
  handler: async (a) => {
    const backend = await initBackend(a.backend as BackendName, (l) => process.stderr.write(`${l}\n`));
    process.stderr.write(`backend: ${backend}\n`);
    if (!(Number.isInteger(a.n) && a.n >= 1)) throw new UsageError(`--n must be a positive integer, got ${a.n}`);
    checkGuidance(a.guidance, 'guidance');
    if (a.eta !== 0 && a.sampler !== 'ddim') throw new UsageError(`--eta applies to --sampler ddim only (${a.sampler} got --eta ${a.eta})`);
    if (!(a.eta >= 0 && a.eta <= 1)) throw new UsageError(`--eta must be in [0, 1] (0: deterministic, 1: DDPM's noise), got ${a.eta}`);
    checkOutputDir(a.out, 'out');
    const { model, loaded } = loadModelCheckpoint(a.checkpoint, (l) => process.stderr.write(`${l}\n`));
    if (a.sampler !== 'ddpm') checkSamplingSteps(a.steps, loaded.config.timesteps, 'steps');
    const schedule = makeSchedule(loaded.config.schedule, loaded.config.timesteps);
    const labels = sampleLabels(a.class, classCount(model.config), a.n, loaded.config.classNames);
    if (labels === undefined && flagGiven('guidance')) throw new UsageError(`--guidance ${a.guidance}: the checkpoint's model is unconditional (trained without --classes)`);
    // "none" is unguided by definition; guidance needs a class to pull towards.
    const guidance = a.class === 'none' ? 1 : a.guidance;
    const caveat = guidanceCaveat(loaded.config, guidance);
    if (caveat !== undefined) process.stderr.write(`${caveat}\n`);
    const images = await generateImages(model, a.ema ? loaded.state.ema : loaded.state.params, schedule, {
      n: a.n, seed: a.seed, sampler: a.sampler as SamplerName, steps: a.steps, eta: a.eta, variance: a.variance as VarianceName, prediction: loaded.config.prediction,
      labels, guidance,
    });
    writeGrid(a.out, images, a.n, model.config, a.class === 'all' ? undefined : Math.ceil(Math.sqrt(a.n)));
    process.stderr.write(`wrote ${a.out}: ${a.n} samples from ${loaded.dir} (step ${loaded.state.step}${a.ema ? ', EMA' : ''})\n`);
  },
};
