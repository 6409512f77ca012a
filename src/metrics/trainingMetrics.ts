/**
 * The coordinator's Prometheus metrics on an explicit registry (STYLE.md 10), with Node's default
 * process metrics beside them. Every label-less series and every enumerable label value exists from
 * the start with value 0, so a dashboard or alert sees "nothing happened yet", not "no data".
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerDefaultMetrics } from './defaultMetrics';
import type { StepReport } from '../coordinator/coordinator';
import type { ExecutorEvents } from '../coordinator/remoteExecutor';
import { LOSS_BUCKET_LABELS, METRIC, REJECT_REASONS } from './names';

/** Step times run from milliseconds (tiny model, GPU) to minutes (big model, CPU workers). */
const STEP_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const CHECKPOINT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface TrainingMetricsOptions {
  /** Connected workers, read at scrape time. */
  workers: () => number;
  /** [name, estimated seconds per unit] of the measured connected workers, read at scrape time. */
  workerSpeeds?: () => [string, number][];
  /** Worker label values known at start (the in-process worker); remote names appear on attach. */
  knownWorkers?: string[];
}

export class TrainingMetrics {
  readonly registry = new Registry();
  private readonly steps: Counter;
  private readonly examples: Counter;
  private readonly step: Gauge;
  private readonly stepDuration: Histogram;
  private readonly loss: Gauge;
  private readonly lossByTimestep: Gauge<'bucket'>;
  private readonly gradNorm: Gauge;
  private readonly learningRate: Gauge;
  private readonly imagesPerSecond: Gauge;
  private readonly workerCompute: Counter<'worker'>;
  private readonly sentBytes: Counter;
  private readonly receivedBytes: Counter;
  private readonly unitsReassigned: Counter;
  private readonly unitsBackedUp: Counter;
  private readonly resultsRejected: Counter<'reason'>;
  private readonly checkpointDuration: Histogram;
  private readonly checkpointLastSuccess: Gauge;

  constructor(opts: TrainingMetricsOptions) {
    const registers = [this.registry];
    registerDefaultMetrics(this.registry);
    this.steps = new Counter({ name: METRIC.steps, help: 'Optimizer steps completed by this process', registers });
    this.examples = new Counter({ name: METRIC.examples, help: 'Training examples reduced into optimizer steps', registers });
    this.step = new Gauge({ name: METRIC.step, help: 'Current optimizer step (counts resumed steps)', registers });
    this.stepDuration = new Histogram({ name: METRIC.stepDuration, help: 'Wall time of one optimizer step, units to update', buckets: STEP_BUCKETS, registers });
    this.loss = new Gauge({ name: METRIC.loss, help: 'Mean training loss of the latest step', registers });
    this.lossByTimestep = new Gauge({
      name: METRIC.lossByTimestep, labelNames: ['bucket'], registers,
      help: 'Mean loss of the latest step\'s examples per timestep bucket (T in 10 equal ranges; kept when a step has none there)',
    });
    this.gradNorm = new Gauge({ name: METRIC.gradNorm, help: 'Global norm of the mean gradient before clipping', registers });
    this.learningRate = new Gauge({ name: METRIC.learningRate, help: 'Learning rate of the latest step', registers });
    this.imagesPerSecond = new Gauge({ name: METRIC.imagesPerSecond, help: 'Training examples per second over the recent steps', registers });
    new Gauge({ name: METRIC.workers, help: 'Workers connected', registers, collect() { this.set(opts.workers()); } });
    new Gauge({
      name: METRIC.workerSecondsPerUnit, labelNames: ['worker'], registers,
      help: 'The coordinator\'s estimate of each connected worker\'s compute seconds per unit, from which it hands out units (measured workers)',
      collect() {
        this.reset();
        for (const [worker, seconds] of opts.workerSpeeds?.() ?? []) this.set({ worker }, seconds);
      },
    });
    this.workerCompute = new Counter({ name: METRIC.workerCompute, help: 'Seconds workers spent computing accepted units', labelNames: ['worker'], registers });
    this.sentBytes = new Counter({ name: METRIC.sentBytes, help: 'Bytes sent to workers', registers });
    this.receivedBytes = new Counter({ name: METRIC.receivedBytes, help: 'Bytes received from workers', registers });
    this.unitsReassigned = new Counter({ name: METRIC.unitsReassigned, help: 'Work units given back to the queue (worker lost, silent or late)', registers });
    this.unitsBackedUp = new Counter({ name: METRIC.unitsBackedUp, help: 'Straggling work units also given to an idle worker (the first result counts)', registers });
    this.resultsRejected = new Counter({ name: METRIC.resultsRejected, help: 'Messages from workers dropped, by reason', labelNames: ['reason'], registers });
    this.checkpointDuration = new Histogram({ name: METRIC.checkpointDuration, help: 'Wall time of one checkpoint save and prune', buckets: CHECKPOINT_BUCKETS, registers });
    this.checkpointLastSuccess = new Gauge({ name: METRIC.checkpointLastSuccess, help: 'Unix time of the latest complete checkpoint (0: none yet)', registers });
    // Labelled series exist only once touched: touch the ones we can name now.
    for (const bucket of LOSS_BUCKET_LABELS) this.lossByTimestep.set({ bucket }, 0);
    for (const reason of REJECT_REASONS) this.resultsRejected.inc({ reason }, 0);
    for (const worker of opts.knownWorkers ?? []) this.workerCompute.inc({ worker }, 0);
  }

  /** The current step before any step runs (0, or the resumed step). */
  setStep(step: number): void {
    this.step.set(step);
  }

  onStep(r: StepReport, imagesPerSecond: number): void {
    this.steps.inc();
    this.examples.inc(r.reduced.examples);
    this.step.set(r.step);
    this.stepDuration.observe(r.seconds);
    this.loss.set(r.reduced.meanLoss);
    const { lossByBucket, countByBucket } = r.reduced;
    LOSS_BUCKET_LABELS.forEach((bucket, b) => {
      if (countByBucket[b] > 0) this.lossByTimestep.set({ bucket }, lossByBucket[b] / countByBucket[b]);
    });
    this.gradNorm.set(r.gradNorm);
    this.learningRate.set(r.learningRate);
    this.imagesPerSecond.set(imagesPerSecond);
  }

  onCheckpoint(seconds: number): void {
    this.checkpointDuration.observe(seconds);
    this.checkpointLastSuccess.set(Date.now() / 1000);
  }

  onUnitDone(worker: string, computeSeconds: number): void {
    this.workerCompute.inc({ worker }, Math.max(0, computeSeconds));
  }

  /** RemoteExecutor events feeding the transport and failure counters. */
  executorEvents(onUnitDone: (worker: string, computeSeconds: number) => void): ExecutorEvents {
    return {
      onRejected: (reason) => this.resultsRejected.inc({ reason }),
      onReassigned: (units) => this.unitsReassigned.inc(units),
      onBackup: (units) => this.unitsBackedUp.inc(units),
      onBytes: (direction, bytes) => (direction === 'sent' ? this.sentBytes : this.receivedBytes).inc(bytes),
      onUnitDone: (worker, seconds) => onUnitDone(worker.name, seconds),
    };
  }
}
