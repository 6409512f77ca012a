/** Prints a progress line every few seconds: throughput over the interval, ETA from it. */
import { LogFormat, formatProgress } from './progress';
import type { StepReport } from './coordinator';

export interface ProgressReporterOptions {
  totalSteps: number;
  format: LogFormat;
  everySeconds: number;
  log: (line: string) => void;
}

export class ProgressReporter {
  private lastTime = 0;
  private lastStep = 0;
  private examplesSince = 0;
  private lossSum = 0;
  private lossCount = 0;
  private last: StepReport | undefined;
  private workers = 0;

  constructor(private readonly opts: ProgressReporterOptions) {}

  begin(step: number): void {
    this.lastTime = performance.now();
    this.lastStep = step;
  }

  onStep(report: StepReport, workers: number): void {
    this.last = report;
    this.workers = workers;
    this.examplesSince += report.reduced.examples;
    this.lossSum += report.reduced.meanLoss;
    this.lossCount++;
    if ((performance.now() - this.lastTime) / 1000 >= this.opts.everySeconds) this.emit();
  }

  finish(step: number): void {
    if (this.last !== undefined && step > this.lastStep) this.emit();
  }

  private emit(): void {
    const r = this.last as StepReport;
    const now = performance.now();
    const seconds = (now - this.lastTime) / 1000;
    const stepsPerSecond = (r.step - this.lastStep) / seconds;
    this.opts.log(formatProgress({
      step: r.step, totalSteps: this.opts.totalSteps, loss: this.lossSum / this.lossCount,
      imagesPerSecond: this.examplesSince / seconds, workers: this.workers,
      etaSeconds: stepsPerSecond > 0 ? (this.opts.totalSteps - r.step) / stepsPerSecond : Infinity,
      learningRate: r.learningRate, gradNorm: r.gradNorm,
    }, this.opts.format));
    this.lastTime = now;
    this.lastStep = r.step;
    this.examplesSince = 0;
    this.lossSum = 0;
    this.lossCount = 0;
  }
}
