/**
 * What the coordinator knows of each worker's speed: its measured seconds per unit, and when a
 * worker measured too slow to be given units is measured again.
 */
import type { WorkerRecord } from './workerRegistry';

/** Measured seconds per unit by worker name, kept across re-registrations. */
export class WorkerSpeeds {
  private readonly seconds = new Map<string, number>();

  get(name: string): number | undefined {
    return this.seconds.get(name);
  }

  /** A moving average of the compute seconds the worker reports, restarted by a remeasure. A
   * worker's first unit includes its warm-up (kernels compiled, memory allocated; on webgpu,
   * pipelines built: seconds), so its second unit's time replaces the first's. */
  record(worker: WorkerRecord, computeSeconds: number): void {
    const s = Math.max(computeSeconds, 1e-4);
    const old = worker.secondsPerUnit;
    worker.secondsPerUnit = old === undefined || worker.remeasure ? s : 0.7 * old + 0.3 * s;
    worker.remeasure = old === undefined;
    this.seconds.set(worker.id, worker.secondsPerUnit);
  }

  /** A missed deadline counts as the whole deadline: a worker that hung and returns is served last. */
  penalize(name: string, deadlineSeconds: number): void {
    this.seconds.set(name, deadlineSeconds);
  }
}

/** Steps without a unit before a worker measured slow is measured again, at most. */
export const MAX_REMEASURE_GAP = 64;
/** Steps in a row with units after which a worker's gap is back to 1. */
export const REMEASURE_RESET_STEPS = 16;

/**
 * Which workers measured too slow to be given units are given a copy of one anyway, to measure
 * them again: a slow spell (throttling, a noisy neighbour) ends, and a worker given no units is
 * never measured again, so would sit idle for the rest of the run. A worker is due after `gap`
 * steps without a unit; each time it is, its gap doubles (up to MAX_REMEASURE_GAP), so one that
 * is taken back after a fast copy and then stalls again is taken back ever more rarely;
 * REMEASURE_RESET_STEPS steps in a row with units set the gap back to 1. Kept by worker id,
 * across re-registrations.
 */
export class Remeasures {
  private readonly state = new Map<string, { lastStep: number; inARow: number; gap: number }>();

  private stateOf(worker: WorkerRecord): { lastStep: number; inARow: number; gap: number } {
    let s = this.state.get(worker.id);
    if (s === undefined) this.state.set(worker.id, (s = { lastStep: 0, inARow: 0, gap: 1 }));
    return s;
  }

  /** `worker` is given a unit in step `step` (steps counted from 1). */
  given(worker: WorkerRecord, step: number): void {
    const s = this.stateOf(worker);
    if (s.lastStep !== step) s.inARow = s.lastStep === step - 1 ? s.inARow + 1 : 1;
    if (s.inARow >= REMEASURE_RESET_STEPS) s.gap = 1;
    s.lastStep = step;
  }

  /** The measured workers due a copy of a unit at the start of step `step`; their gaps double. */
  due(workers: readonly WorkerRecord[], step: number): WorkerRecord[] {
    return workers.filter((w) => {
      const s = this.stateOf(w);
      if (w.secondsPerUnit === undefined || step - 1 - s.lastStep < s.gap) return false;
      s.gap = Math.min(2 * s.gap, MAX_REMEASURE_GAP);
      return true;
    });
  }
}
