/** `ddpm sample`: images from a checkpoint, as a grid, an array or a directory (sampleOutput.ts). */
import { sha256Hex } from '../util/sha256';
import type { CommandModule } from 'yargs';
import { BackendName, initBackend } from '../backend/backend';
import { loadModelCheckpoint } from './checkpointArg';
import { SAMPLER_NAMES, SamplerName, VARIANCE_NAMES, VarianceName } from '../diffusion/samplers';
import { DEFAULT_GUIDANCE, DEFAULT_SAMPLE_BATCH, cyclingLabels, guidanceCaveat } from '../training/generate';
import { classCount } from '../model/config';
import { imageBytes } from '../data/png';
import { formatDuration } from '../coordinator/progress';
import { BatchSampler, startBatchSampler } from '../sampling/batchSampler';
import { Batch, batchPlan, runBatches } from '../sampling/runBatches';
import { WEIGHT_CHOICES } from './exportCommand';
import { MAX_THREADS, availableCores, parseCountFlag, resolveComputeThreads } from './localWorkers';
import { SampleFormat, SampleSink, openSink, sampleFormat } from './sampleOutput';
import { checkCount, checkGuidance, checkOutputDir, checkSamplingSteps, flagGiven, withBackendOption } from './options';
import { UsageError } from './errors';

interface SampleArgs {
  checkpoint: string;
  weights: string;
  ema?: boolean;
  sampler: string;
  steps: number;
  eta: number;
  variance: string;
  n: number;
  seed: number;
  'batch-size': number;
  threads: string;
  shard?: string;
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

/** --shard I/K: this command's share of the batches. */
export function parseShard(spec: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  const [index, count] = m === null ? [NaN, NaN] : [Number(m[1]), Number(m[2])];
  if (!(count >= 1 && index < count)) throw new UsageError(`--shard must be I/K with 0 <= I < K (shard I of K, counting from 0), got ${spec}`);
  return { index, count };
}

/** The flags that need no checkpoint to check, checked before anything loads. */
function checkSampleFlags(a: SampleArgs): { format: SampleFormat; shard: { index: number; count: number } | undefined } {
  const format = sampleFormat(a.out);
  checkOutputDir(a.out.replace(/[\\/]+$/, ''), 'out');
  checkCount(a.n, 'n', 1);
  if (!(Number.isInteger(a.seed) && a.seed >= 0 && a.seed <= 0xffffffff)) throw new UsageError(`--seed must be an integer in [0, 2^32), got ${a.seed}`);
  checkCount(a['batch-size'], 'batch-size', 1);
  parseCountFlag('threads', a.threads, 1, MAX_THREADS);
  const shard = a.shard === undefined ? undefined : parseShard(a.shard);
  if (shard !== undefined && format !== 'pngs') throw new UsageError(`--shard ${a.shard} needs a directory --out, which the shards fill together (got ${a.out})`);
  checkGuidance(a.guidance, 'guidance');
  if (a.eta !== 0 && a.sampler !== 'ddim') throw new UsageError(`--eta applies to --sampler ddim only (${a.sampler} got --eta ${a.eta})`);
  if (!(a.eta >= 0 && a.eta <= 1)) throw new UsageError(`--eta must be in [0, 1] (0: deterministic, 1: DDPM's noise), got ${a.eta}`);
  return { format, shard };
}

/** How often the progress line is printed while sampling. */
const PROGRESS_EVERY_MS = 10_000;

/** Draws the batches into the sink, with a progress line every PROGRESS_EVERY_MS. */
async function drawInto(sink: SampleSink, sampler: BatchSampler, batches: Batch[], log: (line: string) => void): Promise<void> {
  const total = batches.reduce((s, b) => s + b.count, 0);
  let sampled = 0;
  const t0 = Date.now();
  let lastLine = t0;
  await runBatches(sampler, batches, (batch, images) => {
    sink.add(batch, imageBytes(images));
    sampled += batch.count;
    const now = Date.now();
    if (now - lastLine >= PROGRESS_EVERY_MS && sampled < total) {
      lastLine = now;
      const rate = sampled / ((now - t0) / 1000);
      log(`sampled ${sampled}/${total} images  ${rate.toFixed(1)} img/s  ETA ${formatDuration((total - sampled) / rate)}`);
    }
  });
}

export const sampleCommand: CommandModule<object, SampleArgs> = {
  command: 'sample',
  describe: 'generate images from a checkpoint: a PNG grid, a .npz array or a directory of PNGs',
  builder: (y) => withBackendOption(y)
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (a run directory uses its latest)' })
    .option('weights', { type: 'string', choices: WEIGHT_CHOICES, default: 'ema', describe: 'the EMA weights (what the training grids show) or the raw parameters' })
    .option('ema', { type: 'boolean', hidden: true, describe: 'the same as --weights ema (the default)' })
    .option('sampler', { type: 'string', choices: SAMPLER_NAMES, default: 'ddim', describe: 'ddim (--steps, --eta), dpm-solver++ (second-order, --steps: 10-20 suffice) or ddpm (ancestral, every timestep)' })
    .option('steps', { type: 'number', default: 50, describe: 'denoising steps of ddim and dpm-solver++' })
    .option('eta', { type: 'number', default: 0, describe: 'DDIM eta (0 = deterministic)' })
    .option('variance', { type: 'string', choices: VARIANCE_NAMES, default: 'fixed-small', describe: 'DDPM variance' })
    .option('n', { type: 'number', default: 64, describe: 'number of images' })
    .option('seed', { type: 'number', default: 1 })
    .option('batch-size', { type: 'number', default: DEFAULT_SAMPLE_BATCH, describe: 'images per forward pass; each batch has its own noise, so the same --seed and --batch-size give the same images' })
    .option('threads', { type: 'string', default: 'auto', describe: 'batches sampled at once, one per thread, each with its own copy of the model; auto: one per core on wasm/cpu, 1 on tensorflow/webgpu; the images do not depend on it' })
    .option('shard', { type: 'string', describe: 'I/K: only batches I, I + K, I + 2K, ... (counting from 0), into a directory --out that K such commands, on K machines or GPUs, fill together' })
    .option('class', { type: 'string', default: 'all', describe: 'a class-conditional model\'s class: all (one column each), none (unconditional) or one class, by number or by name' })
    .option('guidance', { type: 'number', default: DEFAULT_GUIDANCE, describe: 'classifier-free guidance scale for a class (1: the conditional model alone)' })
    .option('out', { type: 'string', default: 'grid.png', describe: 'a .png: a grid; a .npz: a NumPy uint8 NHWC array (arr_0) and labels (arr_1); a directory: one PNG per image, completed if run again' }) as never,
  handler: async (a) => {
    const { format, shard } = checkSampleFlags(a);
    const log = (l: string) => process.stderr.write(`${l}\n`);
    const backend = await initBackend(a.backend as BackendName, log);
    log(`backend: ${backend}`);
    const { model, loaded } = loadModelCheckpoint(a.checkpoint, log);
    if (a.sampler !== 'ddpm') checkSamplingSteps(a.steps, loaded.config.timesteps, 'steps');
    const labels = sampleLabels(a.class, classCount(model.config), a.n, loaded.config.classNames);
    if (labels === undefined && flagGiven('guidance')) throw new UsageError(`--guidance ${a.guidance}: the checkpoint's model is unconditional (trained without --classes)`);
    // "none" is unguided by definition; guidance needs a class to pull towards.
    const guidance = a.class === 'none' ? 1 : a.guidance;
    const caveat = guidanceCaveat(loaded.config, guidance);
    if (caveat !== undefined) log(caveat);
    const weights = a.ema === true ? 'ema' : a.weights;
    const sampled = weights === 'ema' ? loaded.state.ema : loaded.state.params;
    const batches = batchPlan(a.n, a['batch-size']);
    const options = { n: a.n, seed: a.seed, sampler: a.sampler as SamplerName, prediction: loaded.config.prediction,
      ...(a.sampler === 'ddpm' ? { variance: a.variance as VarianceName } : { steps: a.steps }), ...(a.sampler === 'ddim' ? { eta: a.eta } : {}),
      ...(labels === undefined ? {} : { labels, guidance }) };
    // The labels array is a function of --class and --n; the settings name the flag instead.
    const { labels: _labels, ...described } = options;
    const sink = openSink(format, {
      out: a.out, n: a.n, model: model.config, labels, classNames: loaded.config.classNames, columns: a.class === 'all' ? undefined : Math.ceil(Math.sqrt(a.n)), batches,
      // The weights by content, not by path: shards on machines that mount the run elsewhere agree.
      settings: { step: loaded.state.step, weights, weightsSha256: sha256Hex(sampled), backend, ...described, ...(labels === undefined ? {} : { class: a.class }), batchSize: a['batch-size'] },
    });
    const mine = batches.filter((_, i) => shard === undefined || i % shard.count === shard.index);
    const todo = mine.filter((b) => !sink.done.has(b.start));
    const wanted = mine.reduce((s, b) => s + b.count, 0);
    const total = todo.reduce((s, b) => s + b.count, 0);
    const ofShard = shard === undefined ? '' : ` of shard ${a.shard}`;
    if (total < wanted) log(`${a.out}: ${wanted - total} of the ${wanted} images${ofShard} already there (same settings); sampling the other ${total}`);
    if (todo.length > 0) {
      const threads = Math.min(resolveComputeThreads(a.threads, backend, availableCores()), todo.length);
      const sampler = await startBatchSampler(threads, {
        backend, model: model.config, schedule: loaded.config.schedule, timesteps: loaded.config.timesteps,
        weights: sampled, options,
      });
      if (threads > 1) log(`sampling on ${threads} threads`);
      try {
        await drawInto(sink, sampler, todo, log);
      } finally {
        await sampler.stop();
      }
    }
    log(`${sink.finish()}${ofShard}: ${wanted} samples from ${loaded.dir} (step ${loaded.state.step}, ${weights} weights)`);
  },
};
