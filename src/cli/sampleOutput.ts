/**
 * Where `ddpm sample` puts its images, chosen by --out: a PNG grid (`*.png`), a NumPy archive
 * (`*.npz`: "arr_0" uint8 NHWC, "arr_1" int64 labels of a class-conditional model, as
 * guided-diffusion's evaluation reads them) or a directory of one PNG per image (any other name,
 * as pytorch-fid and clean-fid read them). Batches arrive in any order. A grid and an archive are
 * written once, atomically, at the end; a directory's images each as their batch is done, each
 * renamed into place, so an interrupted run leaves only whole images, and the same command run
 * again computes only the batches whose images are missing (sample.json in the directory records
 * the settings it must match).
 */
import * as fs from 'fs';
import * as path from 'path';
import { encodePng } from '../data/png';
import { writeFailure } from '../util/fsync';
import type { UNetConfig } from '../model/config';
import { NPZ_MAX_BYTES } from '../data/npz';
import { encodeImageNpz, imageNpzBytes } from '../data/npzDataset';
import type { Batch } from '../sampling/runBatches';
import { encodeGrid, gridBytes } from './grid';
import { writeOutputFile } from './options';
import { UsageError } from './errors';

export type SampleFormat = 'grid' | 'npz' | 'pngs';

export function sampleFormat(out: string): SampleFormat {
  if (out.trim() === '') throw new UsageError('--out must name a .png, a .npz or a directory, got ""');
  const ext = path.extname(out).toLowerCase();
  if (ext === '.png') return 'grid';
  if (ext === '.npz') return 'npz';
  if (ext === '' || out.endsWith('/') || out.endsWith(path.sep)) return 'pngs';
  throw new UsageError(`--out ${out}: give a .png (a grid), a .npz (a NumPy array) or a directory (one PNG per image)`);
}

export interface SampleSink {
  /** First images of the batches whose images are all there already (a directory being completed). */
  readonly done: ReadonlySet<number>;
  add(batch: Batch, pixels: Uint8Array): void;
  /** Writes what is left; returns what was written, for the log. */
  finish(): string;
}

interface SinkOptions {
  out: string;
  n: number;
  model: UNetConfig;
  labels: Uint8Array | undefined;
  /** What the labels' classes are called, where the training data named them (a .npz keeps them). */
  classNames?: string[];
  /** Grid columns (undefined: one per class, or near-square). */
  columns: number | undefined;
  /** What made the images; a directory keeps it, and its images are reused only under the same. */
  settings: Record<string, unknown>;
  batches: Batch[];
}

function perImage(model: UNetConfig): number {
  return model.imageSize * model.imageSize * model.imageChannels;
}

/** Checks --out before anything is sampled: an archive fits in a zip, a grid in memory; a
 * directory of images is new, empty, or one begun with the same settings. */
export function openSink(format: SampleFormat, o: SinkOptions): SampleSink {
  if (format === 'pngs') return PngDirectory.open(o);
  if (format === 'npz') {
    const size = imageNpzBytes(o.n, perImage(o.model), o.labels !== undefined);
    if (size > NPZ_MAX_BYTES) throw new UsageError(`--out ${o.out}: ${o.n} images of ${o.model.imageSize}x${o.model.imageSize}x${o.model.imageChannels} make a ${(size / 2 ** 30).toFixed(1)} GiB .npz, over the 4 GiB this writer supports; write a directory of PNGs`);
  }
  if (format === 'grid') {
    const bytes = gridBytes(o.n, o.model, o.columns);
    if (bytes > MAX_GRID_BYTES) throw new UsageError(`--out ${o.out}: a grid of ${o.n} images would be ${(bytes / 2 ** 30).toFixed(1)} GiB of pixels; write a .npz or a directory of PNGs`);
  }
  const all = new Uint8Array(o.n * perImage(o.model));
  return {
    done: new Set(),
    add: (batch, pixels) => all.set(pixels, batch.start * perImage(o.model)),
    finish: () => {
      if (format === 'grid') {
        writeOutputFile('out', o.out, encodeGrid(all, o.n, o.model, o.columns));
        return `wrote ${o.out}`;
      }
      const { imageSize: s, imageChannels: c } = o.model;
      writeOutputFile('out', o.out, encodeImageNpz(all, [o.n, s, s, c], o.labels, o.classNames));
      const names = o.labels && o.classNames ? `, class_names (${o.classNames.length},)` : '';
      return `wrote ${o.out}: arr_0 uint8 (${o.n}, ${s}, ${s}, ${c})${o.labels ? `, arr_1 int64 labels (${o.n},)` : ''}${names}`;
    },
  };
}

/** A grid's pixels, at most: past this a PNG grid is no way to look at samples (pngjs and zlib
 * take buffers under 2 GiB). */
const MAX_GRID_BYTES = 2 ** 30;
const SETTINGS_FILE = 'sample.json';
/** writeFileAtomic's temporary names. */
const TEMPORARY = /\.tmp-\d+-[0-9a-f]+$/;
const LABELS_FILE = 'labels.csv';

class PngDirectory implements SampleSink {
  readonly done = new Set<number>();
  private readonly digits: number;
  private written = 0;

  private constructor(private readonly o: SinkOptions) {
    this.digits = Math.max(6, String(o.n - 1).length);
  }

  static open(o: SinkOptions): PngDirectory {
    const dir = o.out;
    const sink = new PngDirectory(o);
    const settingsFile = path.join(dir, SETTINGS_FILE);
    const wanted = `${JSON.stringify(o.settings, null, 2)}\n`;
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory()) throw new UsageError(`--out ${dir}: not a directory (a grid is a .png, an array a .npz)`);
      // Another shard's sample.json may be on its way in (--shard): a temporary file is no one's.
      const entries = fs.readdirSync(dir).filter((f) => !TEMPORARY.test(f));
      if (entries.length > 0) {
        const had = fs.existsSync(settingsFile) ? fs.readFileSync(settingsFile, 'utf8') : undefined;
        if (had === undefined) throw new UsageError(`--out ${dir}: the directory holds files that ddpm sample did not write; give a new or empty directory`);
        if (had !== wanted) throw new UsageError(`--out ${dir}: the directory holds samples made with other settings (${differences(had, o.settings)}); give a new or empty directory`);
        const present = new Set(entries);
        for (const batch of o.batches) {
          if (Array.from({ length: batch.count }, (_, k) => sink.file(batch.start + k)).every((f) => present.has(f))) sink.done.add(batch.start);
        }
        return sink;
      }
    } else {
      // recursive: no error when another shard has just made it (the parent is checked to exist).
      try {
        fs.mkdirSync(dir, { recursive: true });
      } catch (err) {
        throw new UsageError(`--out ${dir}: cannot make the directory: ${writeFailure(err) ?? (err as Error).message}`);
      }
    }
    writeOutputFile('out', settingsFile, wanted);
    return sink;
  }

  file(index: number): string {
    return `${String(index).padStart(this.digits, '0')}.png`;
  }

  add(batch: Batch, pixels: Uint8Array): void {
    const { imageSize: s, imageChannels: c } = this.o.model;
    const size = perImage(this.o.model);
    for (let k = 0; k < batch.count; k++) {
      writeOutputFile('out', path.join(this.o.out, this.file(batch.start + k)), encodePng(pixels.subarray(k * size, (k + 1) * size), s, s, c as 1 | 3));
    }
    this.written += batch.count;
  }

  finish(): string {
    const labels = this.o.labels;
    if (labels !== undefined) {
      writeOutputFile('out', path.join(this.o.out, LABELS_FILE), `file,class\n${Array.from(labels, (l, i) => `${this.file(i)},${l}`).join('\n')}\n`);
    }
    // Other shards may still be writing theirs: say how far the whole directory is.
    const present = new Set(fs.readdirSync(this.o.out));
    const there = Array.from({ length: this.o.n }, (_, i) => this.file(i)).filter((f) => present.has(f)).length;
    return `wrote ${this.written} PNGs to ${this.o.out} (${there} of ${this.o.n} there${labels ? `; classes in ${LABELS_FILE}` : ''})`;
  }
}

/** The classes a sample directory's labels.csv gives its images, in file order (the order of the
 * PNGs' names), or undefined where there is none (an unconditional model's directory). */
export function readDirectoryLabels(dir: string): Uint8Array | undefined {
  const file = path.join(dir, LABELS_FILE);
  if (!fs.existsSync(file)) return undefined;
  return Uint8Array.from(fs.readFileSync(file, 'utf8').trim().split('\n').slice(1), (line) => Number(line.split(',')[1]));
}

/** Which settings differ between a directory's sample.json and this run's, for the error. */
function differences(had: string, now: Record<string, unknown>): string {
  let old: Record<string, unknown>;
  try {
    old = JSON.parse(had) as Record<string, unknown>;
  } catch {
    return `${SETTINGS_FILE} is not JSON`;
  }
  const keys = [...new Set([...Object.keys(old), ...Object.keys(now)])];
  const changed = keys.filter((k) => JSON.stringify(old[k]) !== JSON.stringify(now[k]));
  return changed.map((k) => `${k} ${JSON.stringify(old[k])} -> ${JSON.stringify(now[k])}`).join(', ');
}
