/**
 * Scores checkpoints by how recognisable their MNIST samples are: a small CNN trained on 8,000
 * labelled digits (classifier.ts) classifies n DDIM samples; confidence, class balance and a
 * Fréchet distance in the CNN's 64-d feature space (frechet.ts) give one reproducible number per
 * checkpoint, beside a ceiling (real digits) and a floor (Gaussian noise) at the same n. A
 * class-conditional checkpoint's samples go through the classes in turn, at each --guidance scale,
 * and also get a class accuracy: how often the CNN names the class asked for. --samples scores
 * images made elsewhere instead (`ddpm sample --out x.npz` or `--out DIR/`, or PyTorch's): the
 * first n, with class accuracy where the file gives labels (arr_1, labels.csv).
 *
 *   npm run quality:digits -- --checkpoint DIR [--checkpoint DIR2 ...] [--samples x.npz|DIR ...] [--n 512]
 *     [--sampler ddim] [--steps 50] [--seed 1] [--backend wasm] [--no-ema] [--guidance 1,2,3] [--json out.json]
 */
import * as fs from 'fs';
import * as path from 'path';
import { BackendName, initBackend, isBackendName } from '../../src/backend/backend';
import { loadCheckpointArg, readCheckpointConfig, resolveCheckpointDir } from '../../src/checkpoint/store';
import { EXIT_USER_ERROR, UsageError, isUserError } from '../../src/cli/errors';
import { fitDataset } from '../../src/data/fit';
import { DataError, loadDataset } from '../../src/data/dataset';
import type { ImageDataset } from '../../src/data/types';
import { readDirectoryLabels } from '../../src/cli/sampleOutput';
import { loadMnistPackage } from '../../src/data/mnistPackage';
import { SAMPLER_NAMES, isSamplerName } from '../../src/diffusion/samplers';
import { UNetModel } from '../../src/model/unetModel';
import { Rng, hashKey } from '../../src/rng/rng';
import { makeSchedule } from '../../src/schedule';
import { DEFAULT_GUIDANCE, generateImages, gridLabels } from '../../src/training/generate';
import { RESULTS_DIR, fmt, parseFlags, table } from '../bench/common';
import { CLASSIFIER_VERSION, DigitClassifier, FEATURE_DIM, LabelledImages, argmax, loadOrTrainClassifier } from './classifier';
import { Gaussian, fitGaussian, frechetDistance } from './frechet';

const USAGE = 'npm run quality:digits -- --checkpoint DIR [--checkpoint DIR2 ...] [--samples x.npz|DIR ...] [flags]';
const TRAIN_COUNT = 8000; // the rest of the 10,000 are held out (classifier accuracy, FID reference)
const SPLIT_SEED = 1;
const CONFIDENT = 0.9;

// --checkpoint and --samples may repeat, which parseFlags does not support: take those out first.
const checkpoints: string[] = [];
const sampleFiles: string[] = [];
const rest: string[] = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--checkpoint') checkpoints.push(process.argv[++i] ?? '');
  else if (a.startsWith('--checkpoint=')) checkpoints.push(a.slice('--checkpoint='.length));
  else if (a === '--samples') sampleFiles.push(process.argv[++i] ?? '');
  else if (a.startsWith('--samples=')) sampleFiles.push(a.slice('--samples='.length));
  else rest.push(a);
}
const flags = parseFlags(USAGE, {
  checkpoint: { default: [] as string[], help: 'run directory (its latest checkpoint) or checkpoint directory; repeat for several' },
  samples: { default: [] as string[], help: 'images made elsewhere: a .npz (arr_0 uint8 NHWC, arr_1 labels) or a directory of PNGs (labels.csv), as ddpm sample writes them; repeat for several' },
  n: { default: 512, help: 'samples per checkpoint (and real / noise images)' },
  sampler: { default: 'ddim' as string, help: `sampler: ${SAMPLER_NAMES.join(', ')} (ddim with eta 0)` },
  steps: { default: 50, help: 'denoising steps (ddim, dpm-solver++)' },
  seed: { default: 1, help: 'sampling seed' },
  backend: { default: 'wasm', help: 'tfjs backend: wasm or cpu (or any of src/backend)' },
  'no-ema': { default: false, help: 'score the raw parameters instead of the EMA weights' },
  guidance: { default: [DEFAULT_GUIDANCE] as number[], help: 'classifier-free guidance scales for class-conditional checkpoints (a row each)' },
  json: { default: '', help: 'also write the results to this JSON file' },
}, rest);

interface Metrics {
  confident: number;
  meanMaxProb: number;
  classEntropyBits: number;
  fid: number;
  /** Conditional samples: the fraction the CNN puts in the class they were drawn for. */
  classAccuracy: number | null;
}
interface Row extends Metrics {
  source: string;
  guidance: number | null;
  step: number | null;
  size: number;
  seconds: number;
}
interface SizeContext {
  classifier: DigitClassifier;
  reference: Gaussian;
  train: LabelledImages;
  info: { size: number; version: string; heldOutAccuracy: number; cacheFile: string; fromCache: boolean; trainSeconds: number; trainedOn: string };
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** The package's 10,000 labelled digits, split by a seeded permutation. */
async function loadSplit(): Promise<{ pixels: ReturnType<typeof fitDataset>; labels: Uint8Array; train: Uint32Array; heldOut: Uint32Array }> {
  const pixels = await loadMnistPackage();
  const labels = pixels.labels!;
  const perm = new Rng(hashKey(SPLIT_SEED)).permutation(pixels.count);
  return { pixels, labels, train: perm.subarray(0, TRAIN_COUNT), heldOut: perm.subarray(TRAIN_COUNT) };
}

/** The first n images of a `ddpm sample` output (or any .npz / PNG directory of square digits),
 * grey, scaled as training does; their labels where the file has them. */
async function loadSamples(file: string, n: number): Promise<{ source: string; images: Float32Array; size: number; labels?: Uint8Array }> {
  let ds: ImageDataset;
  const npz = file.toLowerCase().endsWith('.npz');
  try {
    ds = await loadDataset(`${npz ? 'npz' : 'images'}:${file}`);
  } catch (err) {
    if (!(err instanceof DataError)) throw err;
    throw new UsageError(`--samples ${err.message}`);
  }
  const labels = npz ? ds.labels : readDirectoryLabels(file);
  if (ds.height !== ds.width) throw new UsageError(`--samples ${file}: images are ${ds.height}x${ds.width}; the digit scorer needs square ones`);
  if (ds.count < n) throw new UsageError(`--samples ${file}: ${ds.count} images, fewer than --n ${n}`);
  const grey = fitDataset(ds, ds.height, 1);
  const per = ds.height * ds.width;
  const images = Float32Array.from(grey.pixels.subarray(0, n * per), (p) => p / 127.5 - 1);
  return { source: file, images, size: ds.height, labels: labels?.subarray(0, n) };
}

/** The chosen images of `fitted` (fitDataset to the model's size) scaled as training does: p / 127.5 - 1. */
function select(fitted: ReturnType<typeof fitDataset>, labels: Uint8Array, which: Uint32Array): LabelledImages {
  const size = fitted.width;
  const per = size * size;
  const x = new Float32Array(which.length * per);
  const y = new Uint8Array(which.length);
  which.forEach((k, i) => {
    for (let j = 0; j < per; j++) x[i * per + j] = fitted.pixels[k * per + j] / 127.5 - 1;
    y[i] = labels[k];
  });
  return { n: which.length, size, x, y };
}

function score(ctx: SizeContext, images: Float32Array, n: number, labels?: Uint8Array): Metrics {
  for (let i = 0; i < images.length; i++) images[i] = Math.min(1, Math.max(-1, images[i]));
  const { probs, features } = ctx.classifier.predict(images, n);
  const counts = new Array<number>(10).fill(0);
  let confident = 0;
  let sumMax = 0;
  let asked = 0;
  for (let i = 0; i < n; i++) {
    const c = argmax(probs, i * 10, 10);
    counts[c]++;
    if (labels !== undefined && labels[i] === c) asked++;
    sumMax += probs[i * 10 + c];
    if (probs[i * 10 + c] >= CONFIDENT) confident++;
  }
  const classEntropyBits = -counts.reduce((h, c) => (c === 0 ? h : h + (c / n) * Math.log2(c / n)), 0);
  const fid = frechetDistance(fitGaussian(features, n, FEATURE_DIM), ctx.reference);
  return { confident: confident / n, meanMaxProb: sumMax / n, classEntropyBits, fid, classAccuracy: labels === undefined ? null : asked / n };
}

async function main(): Promise<void> {
  const { n, steps, seed, backend: backendFlag, sampler } = flags;
  const ema = !flags['no-ema'];
  if (checkpoints.length === 0 && sampleFiles.length === 0) throw new UsageError('--checkpoint DIR or --samples FILE is required');
  if (checkpoints.some((c) => c === '' || c.startsWith('--'))) throw new UsageError('--checkpoint needs a directory');
  if (sampleFiles.some((c) => c === '' || c.startsWith('--'))) throw new UsageError('--samples needs a .npz file or a directory');
  if (!(Number.isInteger(n) && n >= 2)) throw new UsageError(`--n must be an integer >= 2, got ${n}`);
  if (!(Number.isInteger(steps) && steps >= 1)) throw new UsageError(`--steps must be a positive integer, got ${steps}`);
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) throw new UsageError(`--seed must be a uint32, got ${seed}`);
  if (!isSamplerName(sampler)) throw new UsageError(`--sampler: unknown sampler "${sampler}" (allowed: ${SAMPLER_NAMES.join(', ')})`);
  if (!isBackendName(backendFlag)) throw new UsageError(`--backend: unknown backend "${backendFlag}"`);
  if (n > TRAIN_COUNT) throw new UsageError(`--n must be at most ${TRAIN_COUNT} (the real-digit row), got ${n}`);

  // Check every checkpoint before the slow part, so a typo in the last one fails at once.
  const targets = checkpoints.map((arg) => {
    const dir = resolveCheckpointDir(arg);
    const config = readCheckpointConfig(dir).model;
    if (config.imageChannels !== 1) throw new UsageError(`${arg}: ${config.imageChannels}-channel images, the digit scorer needs 1`);
    if (config.imageSize < 4) throw new UsageError(`${arg}: image size ${config.imageSize} is too small to score`);
    return { arg, model: new UNetModel(config) };
  });

  const given = await Promise.all(sampleFiles.map((file) => loadSamples(file, n)));

  const backend = await initBackend(backendFlag as BackendName, log);
  const split = await loadSplit();
  const contexts = new Map<number, SizeContext>();
  const contextFor = (size: number): SizeContext => {
    let ctx = contexts.get(size);
    if (ctx) return ctx;
    const fitted = fitDataset(split.pixels, size, 1);
    const train = select(fitted, split.labels, split.train);
    const heldOut = select(fitted, split.labels, split.heldOut);
    const t0 = process.hrtime.bigint();
    const c = loadOrTrainClassifier(size, train, path.join(RESULTS_DIR, '.cache'), backend, log);
    if (!c.fromCache) log(`classifier ${size}x${size}: trained in ${seconds(t0).toFixed(1)} s, cached in ${c.cacheFile}`);
    const heldOutAccuracy = c.classifier.accuracy(heldOut);
    log(`classifier ${size}x${size}: held-out accuracy ${(100 * heldOutAccuracy).toFixed(2)}% on ${heldOut.n} digits${c.fromCache ? ` (cached, trained in ${c.trainSeconds.toFixed(1)} s on ${c.trainedOn})` : ''}`);
    const reference = fitGaussian(c.classifier.predict(heldOut.x, heldOut.n).features, heldOut.n, FEATURE_DIM);
    ctx = { classifier: c.classifier, reference, train, info: { size, version: CLASSIFIER_VERSION, heldOutAccuracy, cacheFile: c.cacheFile, fromCache: c.fromCache, trainSeconds: c.trainSeconds, trainedOn: c.trainedOn } };
    contexts.set(size, ctx);
    return ctx;
  };

  const rows: Row[] = [];
  for (const { arg, model } of targets) {
    const size = model.config.imageSize;
    const ctx = contextFor(size);
    const loaded = loadCheckpointArg(arg, model.specs, log);
    const t0 = process.hrtime.bigint();
    const schedule = makeSchedule(loaded.config.schedule, loaded.config.timesteps);
    const labels = gridLabels(model.config, n);
    for (const guidance of labels === undefined ? [null] : flags.guidance) {
      const t1 = process.hrtime.bigint();
      const images = await generateImages(model, ema ? loaded.state.ema : loaded.state.params, schedule, {
        n, seed, sampler, steps, eta: 0, prediction: loaded.config.prediction, labels, guidance: guidance ?? undefined,
      });
      rows.push({ source: loaded.dir, step: loaded.state.step, size, guidance, ...score(ctx, images, n, labels), seconds: seconds(t1) });
    }
    log(`${loaded.dir}: ${n} samples generated and scored in ${seconds(t0).toFixed(1)} s`);
  }
  for (const s of given) {
    const t0 = process.hrtime.bigint();
    rows.push({ source: s.source, step: null, size: s.size, guidance: null, ...score(contextFor(s.size), s.images, n, s.labels), seconds: seconds(t0) });
  }
  for (const [size, ctx] of contexts) {
    const per = size * size;
    let t0 = process.hrtime.bigint();
    rows.push({ source: 'real digits', step: null, size, guidance: null, ...score(ctx, ctx.train.x.slice(0, n * per), n, ctx.train.y.subarray(0, n)), seconds: seconds(t0) });
    t0 = process.hrtime.bigint();
    const noise = new Rng(hashKey(seed, size, 0x6e6f6973)).gaussianFloat32(n * per);
    rows.push({ source: 'noise', step: null, size, guidance: null, ...score(ctx, noise, n), seconds: seconds(t0) });
  }

  const note = `real digits: the first ${n} of the classifier's ${TRAIN_COUNT} training digits (seen in training, so its confidence there is a ceiling); ` +
    `fid reference: the ${split.heldOut.length} held-out digits; noise: N(0, 1) clamped to [-1, 1]`;
  console.log(`samples: n ${n}, ${sampler === 'ddpm' ? 'DDPM, every timestep' : `${sampler} ${steps} steps`}${sampler === 'ddim' ? ', eta 0' : ''}, seed ${seed}, ${ema ? 'EMA' : 'raw'} weights, backend ${backend}`);
  for (const ctx of contexts.values()) console.log(`classifier ${ctx.info.size}x${ctx.info.size} (${ctx.info.version}, trained on ${ctx.info.trainedOn}): held-out accuracy ${(100 * ctx.info.heldOutAccuracy).toFixed(2)}%`);
  console.log(`${note}\n`);
  console.log(table(['source', 'step', 'size', 'guidance', 'confident', 'meanMaxProb', 'classEntropyBits', 'fid', 'classAccuracy'],
    rows.map((r) => [r.source, r.step ?? '-', r.size, r.guidance ?? '-', fmt(r.confident), fmt(r.meanMaxProb), fmt(r.classEntropyBits), fmt(r.fid, 2), r.classAccuracy === null ? '-' : fmt(r.classAccuracy)])));
  if (flags.json !== '') {
    const out = { config: { n, steps, sampler, eta: 0, seed, ema, backend }, classifiers: [...contexts.values()].map((c) => c.info), note, rows };
    fs.writeFileSync(flags.json, `${JSON.stringify(out, null, 2)}\n`);
    log(`wrote ${flags.json}`);
  }
}

main().catch((err: unknown) => {
  if (isUserError(err)) {
    console.error(`quality:digits: error: ${(err as Error).message}`);
    process.exit(EXIT_USER_ERROR);
  }
  console.error(err);
  process.exit(1);
});
