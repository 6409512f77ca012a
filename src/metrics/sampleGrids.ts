/**
 * Sample grids every --sample-every steps, from the EMA weights, written beside the checkpoints as
 * CHECKPOINT_DIR/samples/step-NNNNNNNN.png; the status page shows the newest.
 *
 * Sampling runs alongside training rather than between steps: with remote workers the coordinator's
 * thread is idle while units are out, so the grid costs the run almost nothing. It generates one
 * image per call and yields in between, so heartbeats, results and scrapes keep flowing; one
 * image's DDIM pass still blocks the thread, so keep --sample-steps modest on big models.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UNetModel } from '../model/unetModel';
import { DiffusionSchedule } from '../schedule';
import type { PredictionTarget } from '../diffusion/types';
import type { SamplerName } from '../diffusion/samplers';
import { generateImages, gridLabels } from '../training/generate';
import { writeGrid } from '../cli/grid';
import { stepDirName } from '../checkpoint/format';

export const SAMPLES_DIR = 'samples';

export function sampleGridPath(checkpointDir: string, step: number): string {
  return path.join(checkpointDir, SAMPLES_DIR, `${stepDirName(step)}.png`);
}

/** The newest periodic grid under CHECKPOINT_DIR/samples, if any (e.g. after --resume). */
export function newestSampleGrid(checkpointDir: string): { file: string; step: number } | undefined {
  const dir = path.join(checkpointDir, SAMPLES_DIR);
  if (!fs.existsSync(dir)) return undefined;
  const newest = fs.readdirSync(dir).filter((n) => /^step-\d{8,}\.png$/.test(n)).sort().pop();
  return newest === undefined ? undefined : { file: path.join(dir, newest), step: Number(newest.slice(5, -4)) };
}

export interface SampleGridOptions {
  model: UNetModel;
  schedule: DiffusionSchedule;
  prediction: PredictionTarget;
  checkpointDir: string;
  every: number;
  n: number;
  /** The sampler and its steps (ddim: eta 0). */
  sampler: SamplerName;
  steps: number;
  /** Classifier-free guidance scale for a conditional model (generate.ts). */
  guidance: number;
  log: (line: string) => void;
  onWritten: (file: string, step: number) => void;
}

export class PeriodicSampler {
  private inFlight: Promise<void> | undefined;
  private skipsLogged = false;

  constructor(private readonly opts: SampleGridOptions) {}

  /** Starts a grid for `step` if one is due and none is being drawn (a due grid is then skipped). */
  maybeStart(step: number, ema: Float32Array): void {
    const { every } = this.opts;
    if (every <= 0 || step % every !== 0) return;
    if (this.inFlight) {
      if (!this.skipsLogged) this.opts.log(`samples: skipping step ${step}: the previous grid is still being drawn (raise --sample-every; further skips not logged)`);
      this.skipsLogged = true;
      return;
    }
    // The optimizer updates the EMA in place: sample from a snapshot of this step's weights.
    const weights = ema.slice();
    this.inFlight = this.draw(step, weights)
      .catch((err) => this.opts.log(`samples: grid for step ${step} failed: ${(err as Error).message}`))
      .finally(() => { this.inFlight = undefined; });
  }

  private async draw(step: number, weights: Float32Array): Promise<void> {
    const { model, schedule, prediction, n, sampler, steps, guidance } = this.opts;
    const labels = gridLabels(model.config, n);
    const perImage = model.config.imageSize * model.config.imageSize * model.config.imageChannels;
    const images = new Float32Array(n * perImage);
    for (let i = 0; i < n; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      // Image i always comes from seed i + 1: grids of successive steps show the same noise.
      images.set(await generateImages(model, weights, schedule, {
        n: 1, seed: i + 1, sampler, steps, eta: 0, prediction, labels: labels?.subarray(i, i + 1), guidance,
      }), i * perImage);
    }
    const file = sampleGridPath(this.opts.checkpointDir, step);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeGrid(file, images, n, model.config);
    this.opts.onWritten(file, step);
  }

  /** Resolves once no grid is being drawn. */
  async idle(): Promise<void> {
    await this.inFlight;
  }
}
