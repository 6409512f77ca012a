/**
 * `ddpm data`: the training data as a run sees it (fitted to the model's image size and channels),
 * without training: its data line, and either a PNG grid of images spread through it (a look at
 * the crop before a long run) or every fitted image as a .npz, so that an image folder is decoded
 * once and later runs, resumes included, load `npz:FILE` in seconds.
 */
import type { CommandModule } from 'yargs';
import { describeDataset, loadDataset } from '../data/dataset';
import { IMAGE_FITS, ImageFit } from '../data/fit';
import { NPZ_MAX_BYTES } from '../data/npz';
import { encodeImageNpz, imageNpzBytes } from '../data/npzDataset';
import { encodePng, imageGrid } from '../data/png';
import { PRESET_NAMES, presetConfig } from '../model/config';
import { UsageError } from './errors';
import { availableCores } from './localWorkers';
import { GRID_PADDING } from './grid';
import { checkCount, checkOutputDir, writeOutputFile } from './options';

export interface DataArgs {
  data: string;
  preset: string;
  'image-size'?: number;
  'image-channels'?: number;
  'image-fit': string;
  n: number;
  out?: string;
}

/** "0 cat 1002, 1 dog 998": how many images each class has (an empty class shows as 0). */
function classCounts(labels: Uint8Array, classes: number, names?: string[]): string {
  const counts = new Array<number>(classes).fill(0);
  for (const l of labels) counts[l]++;
  return counts.map((n, c) => `${c}${names ? ` ${names[c]}` : ''} ${n}`).join(', ');
}

export const dataCommand: CommandModule<object, DataArgs> = {
  command: 'data',
  describe: 'load --data as training would (fitted to the model\'s image size), print what it holds, and write a grid of it or all of it as .npz',
  builder: (y) => y
    .option('data', { type: 'string', default: 'mnist', describe: 'mnist | idx:PATH | cifar10:DIR | images:DIR | npz:FILE' })
    .option('preset', { type: 'string', choices: PRESET_NAMES, default: 'mnist-fast', describe: 'the model whose image size and channels the images are fitted to (as train\'s --preset)' })
    .option('image-size', { type: 'number', describe: 'image height and width (overrides the preset)' })
    .option('image-channels', { type: 'number', describe: 'image channels, 1 or 3 (overrides the preset)' })
    .option('image-fit', { type: 'string', choices: IMAGE_FITS, default: 'crop', describe: 'non-square images: crop (the middle square) or stretch' })
    .option('n', { type: 'number', default: 64, describe: 'images in a grid, spread evenly through the data (every class of an image folder shows)' })
    .option('out', { type: 'string', describe: 'grid.png: --n of the fitted images; data.npz: all of them (arr_0 uint8 NHWC, arr_1 int64 labels), for --data npz:data.npz' }) as never,
  handler: async (a) => {
    const model = presetConfig(a.preset);
    const size = a['image-size'] ?? model.imageSize;
    const channels = a['image-channels'] ?? model.imageChannels;
    const out = a.out;
    const format = out === undefined ? undefined : /\.png$/i.test(out) ? 'grid' : /\.npz$/i.test(out) ? 'npz' : undefined;
    if (out !== undefined && format === undefined) throw new UsageError(`--out ${out}: name a .png (a grid) or a .npz (every image)`);
    if (out !== undefined) checkOutputDir(out, 'out');
    checkCount(a.n, 'n', 1);
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const ds = await loadDataset(a.data, { size, channels, mode: a['image-fit'] as ImageFit }, { threads: availableCores(), log });
    log(`data: ${describeDataset(ds)}`);
    if (ds.labels !== undefined) log(`classes: ${classCounts(ds.labels, ds.classes ?? 0, ds.classNames)}`);
    if (out === undefined) return;
    const perImage = size * size * channels;
    if (format === 'npz') {
      const bytes = imageNpzBytes(ds.count, perImage, ds.labels !== undefined);
      if (bytes > NPZ_MAX_BYTES) throw new UsageError(`--out ${out}: ${ds.count} images of ${size}x${size}x${channels} make a ${(bytes / 2 ** 30).toFixed(1)} GiB .npz, over the 4 GiB this writer supports`);
      writeOutputFile('out', out, encodeImageNpz(ds.pixels, [ds.count, size, size, channels], ds.labels, ds.classNames));
      log(`wrote ${out}: ${ds.count} images${ds.labels ? ` and their labels${ds.classNames ? ' and class names' : ''}` : ''}; train with --data npz:${out}`);
      return;
    }
    // Evenly spread, not the first n: an image folder's first n would all be of its first class.
    const n = Math.min(a.n, ds.count);
    const picked = new Uint8Array(n * perImage);
    for (let i = 0; i < n; i++) {
      const k = Math.floor((i * ds.count) / n);
      picked.set(ds.pixels.subarray(k * perImage, (k + 1) * perImage), i * perImage);
    }
    const grid = imageGrid(picked, n, size, size, channels, GRID_PADDING);
    writeOutputFile('out', out, encodePng(grid.pixels, grid.width, grid.height, grid.channels));
    log(`wrote ${out}: ${n} of the ${ds.count} images, evenly spread`);
  },
};
