/**
 * What the status page shows, as served at /status.json: the step, a loss curve that stays small
 * however long the run (halved in resolution whenever it fills), throughput, and the workers with
 * their recent units per second.
 */
import type { StepReport } from '../coordinator/coordinator';

export interface WorkerRow {
  name: string;
  backend: string;
  /** Milliseconds since the epoch. */
  lastSeen: number;
  joinedAt: number;
  /** The coordinator's estimate of the worker's compute seconds per unit, from which it hands
   * out units; undefined until measured (and for the in-process worker, which takes them all). */
  secondsPerUnit?: number;
}

export interface StatusJson {
  step: number;
  totalSteps: number;
  loss: number | null;
  learningRate: number | null;
  gradNorm: number | null;
  imagesPerSecond: number;
  /** [step, mean loss over the steps since the previous point]. */
  losses: [number, number][];
  workers: { name: string; backend: string; unitsPerSecond: number; secondsPerUnit: number | null; lastSeenSecondsAgo: number }[];
  /** Step of the newest sample grid (its image is /samples/latest.png), null if none. */
  sampleStep: number | null;
  stopping: boolean;
}

const MAX_POINTS = 400;
const RATE_WINDOW_MS = 30_000;

export class StatusTracker {
  private step = 0;
  private last: StepReport | undefined;
  private losses: [number, number][] = [];
  /** Steps per loss point; doubles each time the curve fills. */
  private stride = 1;
  private pendingSum = 0;
  private pendingCount = 0;
  private imagesPerSecond = 0;
  private readonly unitTimes = new Map<string, number[]>();
  private sample: { file: string; step: number } | undefined;
  stopping = false;

  constructor(private readonly totalSteps: number, private readonly workers: () => WorkerRow[], private readonly now = () => Date.now()) {}

  setStep(step: number): void {
    this.step = step;
  }

  onStep(r: StepReport, imagesPerSecond: number): void {
    this.step = r.step;
    this.last = r;
    this.imagesPerSecond = imagesPerSecond;
    this.pendingSum += r.reduced.meanLoss;
    this.pendingCount++;
    if (this.pendingCount < this.stride) return;
    this.losses.push([r.step, this.pendingSum / this.pendingCount]);
    this.pendingSum = 0;
    this.pendingCount = 0;
    if (this.losses.length >= MAX_POINTS) {
      // Merge neighbours: the curve keeps its whole span at half the resolution.
      const merged: [number, number][] = [];
      for (let i = 0; i + 1 < this.losses.length; i += 2) merged.push([this.losses[i + 1][0], (this.losses[i][1] + this.losses[i + 1][1]) / 2]);
      if (this.losses.length % 2 === 1) merged.push(this.losses[this.losses.length - 1]);
      this.losses = merged;
      this.stride *= 2;
    }
  }

  onUnitDone(worker: string): void {
    const times = this.unitTimes.get(worker) ?? [];
    times.push(this.now());
    this.unitTimes.set(worker, times);
    this.pruneTimes(times);
  }

  private pruneTimes(times: number[]): void {
    const cutoff = this.now() - RATE_WINDOW_MS;
    let drop = 0;
    while (drop < times.length && times[drop] < cutoff) drop++;
    times.splice(0, drop);
  }

  onSample(file: string, step: number): void {
    this.sample = { file, step };
  }

  get sampleFile(): string | undefined {
    return this.sample?.file;
  }

  /** Units per second over the last 30 s, or since the worker joined if that is shorter. */
  private unitsPerSecond(w: WorkerRow, now: number): number {
    const times = this.unitTimes.get(w.name) ?? [];
    this.pruneTimes(times);
    const seconds = Math.min(RATE_WINDOW_MS, now - w.joinedAt) / 1000;
    return seconds > 0 ? times.length / seconds : 0;
  }

  toJSON(): StatusJson {
    const now = this.now();
    const r = this.last;
    return {
      step: this.step, totalSteps: this.totalSteps,
      loss: r?.reduced.meanLoss ?? null, learningRate: r?.learningRate ?? null, gradNorm: r?.gradNorm ?? null,
      imagesPerSecond: this.imagesPerSecond,
      losses: this.losses,
      workers: this.workers().map((w) => ({
        name: w.name, backend: w.backend, unitsPerSecond: this.unitsPerSecond(w, now), secondsPerUnit: w.secondsPerUnit ?? null,
        lastSeenSecondsAgo: Math.max(0, (now - w.lastSeen) / 1000),
      })),
      sampleStep: this.sample?.step ?? null,
      stopping: this.stopping,
    };
  }
}
