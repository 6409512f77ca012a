/**
 * Everything a training process reports about itself: Prometheus metrics, the status page's state,
 * readiness; and the HTTP routes that serve them. The training job feeds it events; the command
 * tells it where the workers are once its executor exists.
 */
import * as fs from 'fs';
import type { StepReport } from '../coordinator/coordinator';
import type { ExecutorEvents } from '../coordinator/remoteExecutor';
import { TrainingMetrics } from './trainingMetrics';
import { StatusTracker, WorkerRow } from './status';
import { Throughput } from './throughput';
import { Route, text } from './httpServer';
import { STATUS_PAGE_HTML } from './statusPage';

export interface WorkerSource {
  count: () => number;
  rows: () => WorkerRow[];
}

export interface TelemetryOptions {
  totalSteps: number;
  /** Workers needed for /readyz: max(1, --min-workers). */
  readyWorkers: number;
  /** Worker label values known before any attaches (the in-process worker). */
  knownWorkers?: string[];
}

export class TrainingTelemetry {
  readonly metrics: TrainingMetrics;
  readonly status: StatusTracker;
  private readonly throughput = new Throughput();
  private workers: WorkerSource = { count: () => 0, rows: () => [] };
  private stopping = false;

  constructor(private readonly opts: TelemetryOptions) {
    this.metrics = new TrainingMetrics({
      workers: () => this.workers.count(), knownWorkers: opts.knownWorkers,
      workerSpeeds: () => this.workers.rows().flatMap((w): [string, number][] => (w.secondsPerUnit === undefined ? [] : [[w.name, w.secondsPerUnit]])),
    });
    this.status = new StatusTracker(opts.totalSteps, () => this.workers.rows());
  }

  setWorkers(source: WorkerSource): void {
    this.workers = source;
  }

  /** The step training starts from (0, or the resumed one). */
  setStep(step: number): void {
    this.metrics.setStep(step);
    this.status.setStep(step);
  }

  onStep(r: StepReport): void {
    this.throughput.add(r.reduced.examples, r.seconds);
    const ips = this.throughput.perSecond();
    this.metrics.onStep(r, ips);
    this.status.onStep(r, ips);
  }

  onCheckpoint(seconds: number): void {
    this.metrics.onCheckpoint(seconds);
  }

  onUnitDone(worker: string, computeSeconds: number): void {
    this.metrics.onUnitDone(worker, computeSeconds);
    this.status.onUnitDone(worker);
  }

  onSample(file: string, step: number): void {
    this.status.onSample(file, step);
  }

  executorEvents(): ExecutorEvents {
    return this.metrics.executorEvents((worker, seconds) => this.onUnitDone(worker, seconds));
  }

  /** After a stop request or the last step: /readyz turns 503 so no one routes work here. */
  markStopping(): void {
    this.stopping = true;
    this.status.stopping = true;
  }

  /** Why the process is not ready, or undefined when it is. */
  notReady(): string | undefined {
    if (this.stopping) return 'stopping';
    const n = this.workers.count();
    return n >= this.opts.readyWorkers ? undefined : `${n} of ${this.opts.readyWorkers} worker(s) attached`;
  }

  routes(): Record<string, Route> {
    return {
      '/': () => ({ status: 200, contentType: 'text/html; charset=utf-8', body: STATUS_PAGE_HTML }),
      '/metrics': async () => ({ status: 200, contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() }),
      '/healthz': () => text(200, 'ok\n'),
      '/readyz': () => {
        const why = this.notReady();
        return why === undefined ? text(200, 'ready\n') : text(503, `not ready: ${why}\n`);
      },
      '/status.json': () => ({ status: 200, contentType: 'application/json', body: JSON.stringify(this.status.toJSON()) }),
      '/samples/latest.png': async () => {
        const file = this.status.sampleFile;
        if (file === undefined) return text(404, 'no sample grid yet (see --sample-every)\n');
        return { status: 200, contentType: 'image/png', body: await fs.promises.readFile(file) };
      },
    };
  }
}
