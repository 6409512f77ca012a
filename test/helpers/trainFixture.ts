/**
 * The training run of test/resume.test.ts: configuration, in-memory dataset, executors, and a
 * function that trains with checkpoints every step. Run in a child process (trainRunChild.ts).
 */
import { CheckpointStore } from '../../src/checkpoint/store';
import { Coordinator } from '../../src/coordinator/coordinator';
import { InlineUnitComputer } from '../../src/worker/unitComputer';
import { InProcessExecutor } from '../../src/coordinator/inProcessExecutor';
import type { StepWork, UnitExecutor } from '../../src/coordinator/executor';
import type { ImageDataset } from '../../src/data/types';
import { presetConfig } from '../../src/model/config';
import { UNetModel } from '../../src/model/unetModel';
import { makeSchedule } from '../../src/schedule';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../src/training/config';
import { UnitGradientComputer } from '../../src/training/unitGradients';
import type { UnitResult } from '../../src/training/workUnit';

/** Tiny model with dropout (so dropout seeds matter), flips, and a learning rate that changes at
 * every step across the resume point (warm-up, then cosine decay), with weight decay. */
export const RESUME_CONFIG: TrainConfig = {
  ...TRAIN_DEFAULTS,
  model: { ...presetConfig('tiny'), dropout: 0.1 },
  data: 'memory:test',
  flip: true,
  batchSize: 8,
  unitSize: 4,
  steps: 6,
  seed: 11,
  lr: 1e-3,
  warmupSteps: 2,
  lrSchedule: 'cosine',
  adamWeightDecay: 0.05,
  emaDecay: 0.999,
};

/** 28 deterministic 8x8 grey images: 28 is not a multiple of 8, so the first epoch ends inside step 3. */
export function makeDataset(): ImageDataset {
  const count = 28;
  const pixels = new Uint8Array(count * 64);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + Math.floor(i / 64) * 101) % 256;
  return { count, height: 8, width: 8, channels: 1, pixels, source: 'memory:test' };
}

/** Computes a step's units in reverse order, optionally delivering each result twice. */
export class ReversingExecutor implements UnitExecutor {
  readonly accepted: boolean[] = [];
  readonly computedOrder: number[] = [];

  constructor(private readonly computer: UnitGradientComputer, private readonly deliverTwice = false) {}

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.computer.dispose();
  }

  cancel(): void {}

  async run(work: StepWork, accept: (result: UnitResult) => boolean): Promise<void> {
    if (this.computer.paramVersion !== work.paramVersion) this.computer.setParams(work.params, work.paramVersion);
    for (const unit of [...work.units].reverse()) {
      this.computedOrder.push(unit.unitId);
      const result = await this.computer.compute(unit);
      this.accepted.push(accept(result));
      if (this.deliverTwice) this.accepted.push(accept(result));
    }
  }

  workerCount(): number {
    return 1;
  }
}

export type ExecutorKind = 'in-process' | 'reversed' | 'reversed-twice';

export interface TrainRequest {
  dir: string;
  /** After this step the run is asked to stop (as SIGTERM does), short of RESUME_CONFIG.steps. */
  stopAfter?: number;
  resume: boolean;
  executor: ExecutorKind;
}

export interface StepSummary {
  step: number;
  loss: number;
  gradNorm: number;
  learningRate: number;
  examples: number;
}

export interface TrainOutcome {
  steps: StepSummary[];
  logs: string[];
  /** ReversingExecutor only: accept()'s answers and the order units were computed in. */
  accepted: boolean[];
  computedOrder: number[];
  finalStep: number;
}

/** Trains RESUME_CONFIG, or until req.stopAfter, with a checkpoint after every step into req.dir. */
export async function runTraining(req: TrainRequest): Promise<TrainOutcome> {
  const config = RESUME_CONFIG;
  const computer = new UnitGradientComputer(new UNetModel(config.model), makeSchedule(config.schedule, config.timesteps), { prediction: config.prediction, snrGamma: config.snrGamma });
  const executor = req.executor === 'in-process' ? new InProcessExecutor(new InlineUnitComputer(computer)) : new ReversingExecutor(computer, req.executor === 'reversed-twice');
  const logs: string[] = [];
  const steps: StepSummary[] = [];
  const coordinator = new Coordinator({
    config, dataset: makeDataset(), executor,
    checkpoints: { store: new CheckpointStore(req.dir, new UNetModel(config.model).specs, (l) => logs.push(l)), every: 1, keep: 100 },
    resume: req.resume, log: (l) => logs.push(l),
    onStep: (r) => {
      steps.push({ step: r.step, loss: r.reduced.meanLoss, gradNorm: r.gradNorm, learningRate: r.learningRate, examples: r.reduced.examples });
      if (r.step === req.stopAfter) coordinator.requestStop();
    },
  });
  try {
    await coordinator.run();
  } finally {
    await coordinator.stop();
  }
  const rev = executor instanceof ReversingExecutor ? executor : undefined;
  return { steps, logs, accepted: rev?.accepted ?? [], computedOrder: rev?.computedOrder ?? [], finalStep: coordinator.step };
}
