/**
 * Sample grids every --sample-every steps, from the EMA weights, written beside the checkpoints as
 * CHECKPOINT_DIR/samples/step-NNNNNNNN.png; the status page shows the newest.
 *
 * Sampling runs alongside training rather than between steps. On wasm and cpu, whose kernels keep
 * one core busy, a thread of its own draws the grid (sampling/gridThread.ts): the coordinator's
 * thread keeps reading results and heartbeats, and the in-process worker keeps computing, while a
 * big model's grid takes minutes. On webgpu and tensorflow it is drawn in this thread, one image
 * per turn of the event loop. Either way image i comes from seed i + 1 (gridImages): the same
 * weights give the same grid.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UNetModel } from '../model/unetModel';
import type { UNetConfig } from '../model/config';
import { DiffusionSchedule, ScheduleName } from '../schedule';
import type { PredictionTarget } from '../diffusion/types';
import type { SamplerName } from '../diffusion/samplers';
import { GridOptions, gridImages } from '../training/generate';
import { computesOnOneCore } from '../backend/backend';
import { ThreadPool } from '../util/threadPool';
import { threadScript } from '../util/threadScript';
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

/** What the grid thread is started with, and what each grid asks of it. */
export interface GridThreadInit {
  backend: string;
  model: UNetConfig;
  schedule: ScheduleName;
  timesteps: number;
}
export interface GridJob {
  weights: Float32Array;
  options: GridOptions;
}

export interface SampleGridOptions {
  model: UNetModel;
  schedule: DiffusionSchedule;
  /** The run's tfjs backend: wasm and cpu draw on a thread of their own. */
  backend: string;
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
  private thread: Promise<ThreadPool<GridJob, Float32Array>> | undefined;

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
    const options: GridOptions = { n, sampler, steps, prediction, guidance };
    const images = computesOnOneCore(this.opts.backend)
      ? await (await this.startThread()).call({ weights, options })
      : await gridImages(model, weights, schedule, options);
    const file = sampleGridPath(this.opts.checkpointDir, step);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeGrid(file, images, n, model.config);
    this.opts.onWritten(file, step);
  }

  private startThread(): Promise<ThreadPool<GridJob, Float32Array>> {
    const { backend, model, schedule } = this.opts;
    const init: GridThreadInit = { backend, model: model.config, schedule: schedule.name, timesteps: schedule.timesteps };
    this.thread ??= ThreadPool.start<GridJob, Float32Array>(threadScript(__dirname, 'sampling', 'gridThread'), 1, init, 'sampling thread');
    return this.thread;
  }

  /** Resolves once no grid is being drawn. */
  async idle(): Promise<void> {
    await this.inFlight;
  }

  /** Waits for a grid being drawn, then ends the grid thread, if one was started. Idempotent. */
  async stop(): Promise<void> {
    await this.idle();
    const thread = this.thread;
    this.thread = undefined;
    await (await thread?.catch(() => undefined))?.dispose();
  }
}
