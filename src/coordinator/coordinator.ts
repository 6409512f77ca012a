/**
 * The training loop (DESIGN.md, "Processes and data flow"). For each step: plan the global batch
 * from (seed, step), hand its units to the executor, reduce results in unit order, then mean,
 * clip, Adam, EMA, checkpoint. Single-process training is this loop with an InProcessExecutor.
 */
import { TrainConfig } from '../training/config';
import { BatchPlanner, PlanConfig } from '../training/batchPlan';
import { OrderedReducer, ReducedStep } from '../training/reduce';
import { OptimizerState, UpdateStats, applyUpdate, initialOptimizerState } from '../training/optimizer';
import { UnitResult, WorkUnit } from '../training/workUnit';
import { UNetModel } from '../model/unetModel';
import { DataError, ImageDataset, maxLabel } from '../data/dataset';
import { classCount } from '../model/config';
import { CheckpointStore } from '../checkpoint/store';
import { loadInitWeights } from '../checkpoint/initWeights';
import { CheckpointError } from '../checkpoint/errors';
import { UnitExecutor } from './executor';
import { UpdateThreads, shareOptimizerState } from '../training/updateThreads';
import { bytesPerElement } from '../protocol/dtypes';

export interface CheckpointPolicy {
  store: CheckpointStore;
  every: number;
  keep: number;
}

export interface StepReport extends UpdateStats {
  step: number;
  reduced: ReducedStep;
  seconds: number;
}

export interface CoordinatorOptions {
  config: TrainConfig;
  /** Already fitted to the model's image size and channels. */
  dataset: ImageDataset;
  executor: UnitExecutor;
  checkpoints?: CheckpointPolicy;
  /** Continue from the newest complete checkpoint in checkpoints.store, if any. */
  resume?: boolean;
  log?: (line: string) => void;
  onStep?: (report: StepReport) => void;
  /** Threads (this one included) for the per-step pass over the parameters: clipping, Adam, the
   * EMA and the encoding of the next PARAMETERS message. The result does not depend on it. Default 1. */
  updateThreads?: number;
  onCheckpoint?: (dir: string, seconds: number) => void;
  onCheckpointFailed?: (err: Error) => void;
  /** After a stop request, how long the step in flight may take before it is abandoned. */
  stopLingerMs?: number;
}

/** A conditional run's labels for the batch plan: the dataset must have them, each below --classes. */
function planLabels(config: TrainConfig, dataset: ImageDataset): PlanConfig['labels'] {
  const classes = classCount(config.model);
  if (classes === 0) return undefined;
  if (dataset.labels === undefined) throw new DataError(`--classes ${classes}: the data (${dataset.source}) has no class labels`);
  const top = maxLabel(dataset.labels);
  if (top >= classes) throw new DataError(`--classes ${classes}: the data (${dataset.source}) has labels up to ${top}; use --classes ${dataset.classes ?? top + 1}`);
  return { of: dataset.labels, classes, dropProbability: config.classDropout };
}

export class Coordinator {
  readonly model: UNetModel;
  private state: OptimizerState | undefined;
  private readonly planner: BatchPlanner;
  private readonly perImage: number;
  private stopRequested = false;
  private abandonTimer: NodeJS.Timeout | undefined;
  private stepAbandoned = false;
  private started: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private lastLoss: number | null = null;
  private lastSavedStep = -1;
  private reducer: OrderedReducer | undefined;
  private updater: UpdateThreads | undefined;
  /** The parameters of step `version`, already encoded for the executor by the update threads. */
  private nextFrame: { version: number; bytes: Uint8Array } | undefined;

  constructor(private readonly opts: CoordinatorOptions) {
    const { config, dataset } = opts;
    this.model = new UNetModel(config.model);
    const { imageSize, imageChannels } = config.model;
    if (dataset.height !== imageSize || dataset.width !== imageSize || dataset.channels !== imageChannels) {
      throw new RangeError(`dataset is ${dataset.height}x${dataset.width}x${dataset.channels}, model needs ${imageSize}x${imageSize}x${imageChannels}`);
    }
    this.perImage = imageSize * imageSize * imageChannels;
    this.planner = new BatchPlanner({
      seed: config.seed, datasetSize: dataset.count, batchSize: config.batchSize, unitSize: config.unitSize,
      timesteps: config.timesteps, flip: config.flip, labels: planLabels(config, dataset),
    });
  }

  get optimizerState(): OptimizerState {
    if (this.state === undefined) throw new Error('coordinator not started');
    return this.state;
  }

  get step(): number {
    return this.state?.step ?? 0;
  }

  /** Loads or initialises the state and starts the executor. Idempotent. */
  start(): Promise<void> {
    this.started ??= (async () => {
      const { config, checkpoints, resume, log } = this.opts;
      const loaded = resume && checkpoints ? checkpoints.store.loadLatest() : undefined;
      if (loaded) {
        this.state = loaded.state;
        this.lastLoss = loaded.loss;
        this.lastSavedStep = loaded.state.step;
        log?.(`resumed from ${loaded.dir} at step ${loaded.state.step}`);
      } else {
        if (resume) log?.('no checkpoint to resume from: starting at step 0');
        const from = config.initFrom;
        this.state = initialOptimizerState(from ? loadInitWeights(from, this.model) : this.model.initialParams(config.seed));
        if (from) log?.(`starting from the weights in ${from.file} (SHA-256 ${from.sha256.slice(0, 12)})`);
      }
      const lanes = this.opts.updateThreads ?? 1;
      if (lanes > 1) {
        const state = shareOptimizerState(this.state);
        const reducer = new OrderedReducer(0, this.model.size, true);
        this.reducer = reducer;
        this.updater = new UpdateThreads(lanes, state, reducer.mean);
      }
      await this.opts.executor.start();
    })();
    return this.started;
  }

  /** Asks the loop to finish the step in flight (or abandon it after the linger), checkpoint and return. */
  requestStop(): void {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.abandonTimer = setTimeout(() => {
      this.stepAbandoned = true;
      this.opts.executor.cancel();
    }, this.opts.stopLingerMs ?? 10000);
    this.abandonTimer.unref();
  }

  get stopping(): boolean {
    return this.stopRequested;
  }

  private workUnits(step: number): WorkUnit[] {
    const { pixels } = this.opts.dataset;
    return this.planner.plan(step).map((p) => {
      const unitPixels = new Uint8Array(p.indices.length * this.perImage);
      p.indices.forEach((idx, i) => unitPixels.set(pixels.subarray(idx * this.perImage, (idx + 1) * this.perImage), i * this.perImage));
      return {
        step, unitId: p.unitId, count: p.indices.length, pixels: unitPixels, timesteps: p.timesteps,
        noiseSeeds: p.noiseSeeds, flips: p.flips, dropoutSeed: p.dropoutSeed, labels: p.labels,
      };
    });
  }

  /** One synchronous data-parallel step; returns its report, or undefined if it was abandoned. */
  async runStep(): Promise<StepReport | undefined> {
    const state = this.optimizerState;
    const started = process.hrtime.bigint();
    const step = state.step;
    const units = this.workUnits(step);
    this.reducer ??= new OrderedReducer(units.length, this.model.size);
    const reducer = this.reducer;
    reducer.reset(units.length);
    const paramsFrame = this.nextFrame?.version === step ? this.nextFrame.bytes : undefined;
    this.nextFrame = undefined;
    await this.opts.executor.run({ step, paramVersion: step, params: state.params, paramsFrame, units }, (r: UnitResult) => r.step === step && reducer.add(r));
    if (this.stepAbandoned) {
      this.opts.log?.(`step ${step} abandoned: stop requested and the step did not finish in time`);
      return undefined;
    }
    const reduced = reducer.finish();
    let stats: UpdateStats;
    const dtype = this.opts.executor.paramsDtype;
    if (this.updater) {
      // The threads also encode the new parameters for the next step's PARAMETERS message: a
      // fresh buffer each step, since ZeroMQ may still hold the last one (it sends without copying).
      const frame = dtype === undefined ? undefined : { dtype, bytes: new Uint8Array(new SharedArrayBuffer(state.params.length * bytesPerElement(dtype))) };
      stats = this.updater.applyUpdate(this.opts.config, state, reduced.meanGrad, reduced.gradNorm, frame);
      if (frame) this.nextFrame = { version: state.step, bytes: frame.bytes };
    } else {
      stats = applyUpdate(this.opts.config, state, reduced.meanGrad, reduced.gradNorm);
    }
    this.lastLoss = reduced.meanLoss;
    const report: StepReport = { ...stats, step: state.step, reduced, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
    this.opts.onStep?.(report);
    return report;
  }

  checkpoint(): string | undefined {
    const policy = this.opts.checkpoints;
    if (!policy || this.lastSavedStep === this.step) return undefined;
    const t0 = process.hrtime.bigint();
    const dir = policy.store.save({ config: this.opts.config, state: this.optimizerState, loss: this.lastLoss, dataCursor: this.planner.cursor(this.step) });
    policy.store.prune(policy.keep);
    this.lastSavedStep = this.step;
    this.opts.onCheckpoint?.(dir, Number(process.hrtime.bigint() - t0) / 1e9);
    return dir;
  }

  /** A failed periodic save (a full disk, say) is reported and training goes on: the previous
   * checkpoint is intact, and the next save may succeed. The final save must succeed. */
  private periodicCheckpoint(): void {
    try {
      this.checkpoint();
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      this.opts.log?.(`warning: ${err.message}; training continues`);
      this.opts.onCheckpointFailed?.(err);
    }
  }

  /** Trains until config.steps or a stop request, checkpointing on the way and at the end. */
  async run(): Promise<void> {
    await this.start();
    const every = this.opts.checkpoints?.every ?? 0;
    while (this.step < this.opts.config.steps && !this.stopRequested) {
      await this.runStep();
      if (every > 0 && this.step % every === 0) this.periodicCheckpoint();
    }
    clearTimeout(this.abandonTimer);
    this.checkpoint();
  }

  /** Stops the executor and the update threads. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= Promise.all([this.opts.executor.stop(), this.updater?.close()]).then(() => undefined);
    return this.stopped;
  }
}
