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

  /** A moving average of the compute seconds the worker reports, except while it is being
   * measured afresh (WorkerRecord.remeasuring): then the mean of the fresh measurements replaces
   * it once there are enough. A worker's first unit includes its warm-up (kernels compiled, memory
   * allocated; on webgpu, pipelines built: seconds), so its second unit's time replaces the first's. */
  record(worker: WorkerRecord, computeSeconds: number): void {
    const s = Math.max(computeSeconds, 1e-4);
    const old = worker.secondsPerUnit;
    const fresh = worker.remeasuring;
    if (old === undefined) {
      worker.secondsPerUnit = s;
      worker.remeasuring = { needed: 1, seconds: [], warmUp: true };
    } else if (fresh !== undefined) {
      fresh.seconds.push(s);
      if (fresh.seconds.length >= fresh.needed) {
        worker.secondsPerUnit = fresh.seconds.reduce((a, b) => a + b, 0) / fresh.seconds.length;
        worker.remeasuring = undefined;
      }
    } else {
      worker.secondsPerUnit = 0.7 * old + 0.3 * s;
    }
    this.seconds.set(worker.id, worker.secondsPerUnit as number);
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
/** Units whose mean time replaces a remeasured worker's, the first time: one lucky unit of a
 * worker slow on every few would have it taken back, to stall the next step it is given a slow
 * unit in. Times its gap (each time it is measured again without having kept its units for
 * REMEASURE_RESET_STEPS, it takes more), up to MAX_REMEASURE_UNITS. */
export const REMEASURE_UNITS = 4;
/** The most units a worker is measured again on. */
export const MAX_REMEASURE_UNITS = 16;

interface RemeasureState {
  /** The last step the worker was given a unit or a copy in (steps counted from 1). */
  lastStep: number;
  /** Steps in a row, up to lastStep, in which it was given units (copies do not count). */
  inARow: number;
  gap: number;
  /** The step its last copy was given in, until a measurement of it comes back. */
  copyOutSince: number | undefined;
}

/**
 * Which workers measured too slow to be given units are given copies of units anyway, to measure
 * them again: a slow spell (throttling, a noisy neighbour) ends, and a worker given no units is
 * never measured again, so would sit idle for the rest of the run. A worker is due after `gap`
 * steps without a unit; it then gets a copy in each step it is given no unit (UnitScheduler.copies),
 * one at a time, until REMEASURE_UNITS x gap of its units are measured (at most
 * MAX_REMEASURE_UNITS; one, for a worker measured on its warm-up unit only), whose mean becomes its
 * time (WorkerSpeeds). Each time it is due, its gap doubles (up to MAX_REMEASURE_GAP), so one
 * that is taken back and then stalls again is taken back ever more rarely, and on more evidence;
 * REMEASURE_RESET_STEPS steps in a row with units set the gap back to 1. Kept by worker id, across
 * re-registrations.
 */
export class Remeasures {
  private readonly state = new Map<string, RemeasureState>();

  private stateOf(worker: WorkerRecord): RemeasureState {
    let s = this.state.get(worker.id);
    if (s === undefined) this.state.set(worker.id, (s = { lastStep: 0, inARow: 0, gap: 1, copyOutSince: undefined }));
    return s;
  }

  /** `worker` is given a unit, or a `copy` of one, in step `step` (steps counted from 1). */
  given(worker: WorkerRecord, step: number, copy = false): void {
    const s = this.stateOf(worker);
    if (copy) {
      s.inARow = 0;
      s.copyOutSince = step;
    } else if (s.lastStep !== step) {
      s.inARow = s.lastStep === step - 1 ? s.inARow + 1 : 1;
    }
    if (s.inARow >= REMEASURE_RESET_STEPS) s.gap = 1;
    s.lastStep = step;
  }

  /** A unit's time on `worker` came back. */
  measured(worker: WorkerRecord): void {
    this.stateOf(worker).copyOutSince = undefined;
  }

  /** The measured workers due a copy of a unit at the start of step `step`: those being measured
   * again that hold nothing and have no copy out (one lost is given up on after
   * MAX_REMEASURE_GAP steps), and those whose gap has passed, whose gaps double. */
  due(workers: readonly WorkerRecord[], step: number): WorkerRecord[] {
    return workers.filter((w) => {
      const s = this.stateOf(w);
      // Being measured again (a warm-up's replacement is no remeasure) until enough are in.
      if (w.remeasuring !== undefined && !w.remeasuring.warmUp) {
        if (s.copyOutSince !== undefined && step - s.copyOutSince <= MAX_REMEASURE_GAP) return false;
        return w.outstanding.size === 0;
      }
      // Measured (or re-registered, which starts a fresh record).
      s.copyOutSince = undefined;
      if (w.secondsPerUnit === undefined || step - 1 - s.lastStep < s.gap) return false;
      // A worker measured on its first unit only (a late joiner) was slow for its warm-up: one
      // unit's time settles that, and it joins at once.
      const warmUpOnly = w.remeasuring?.warmUp === true;
      w.remeasuring = { needed: warmUpOnly ? 1 : Math.min(REMEASURE_UNITS * s.gap, MAX_REMEASURE_UNITS), seconds: [] };
      s.gap = Math.min(2 * s.gap, MAX_REMEASURE_GAP);
      return true;
    });
  }
}
