/**
 * Which worker computes the next unit: the one expected to finish it first, from measured seconds
 * per unit times its queue. Faster workers therefore get more units, and a unit waits for a busy
 * fast worker rather than going to a slow one.
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

/**
 * The worker to give the next unit to, or undefined to wait for a busy but faster one. A worker
 * with k compute slots runs k units at once, each taking its seconds per unit, and may hold
 * `depth` units beyond its first k - 1 (so that no slot idles waiting for the next unit).
 * A busy worker that has returned nothing for longer than its seconds per unit is taken to be
 * as slow as that time so far: a worker measured fast that then hangs (stopped, swapping) would
 * otherwise hold the queue, idle workers waiting for it, until it is dropped as silent.
 */
export function chooseWorker(workers: readonly WorkerRecord[], depth: number, now: number): WorkerRecord | undefined {
  const known = workers.map((w) => w.secondsPerUnit).filter((v): v is number => v !== undefined);
  // An unmeasured worker is assumed as fast as the fastest, so it gets units and a measurement.
  const fallback = known.length > 0 ? Math.min(...known) : 0;
  const secondsPerUnit = (w: WorkerRecord) =>
    Math.max(w.secondsPerUnit ?? fallback, w.outstanding.size > 0 ? (now - w.progressAt) / 1000 : 0);
  const finish = (w: WorkerRecord) => Math.ceil((w.outstanding.size + 1) / w.slots) * secondsPerUnit(w);
  const free = workers.filter((w) => w.outstanding.size < depth + w.slots - 1);
  if (free.length === 0) return undefined;
  const best = free.reduce((a, b) => (finish(b) < finish(a) ? b : a));
  return workers.some((w) => finish(w) < finish(best)) ? undefined : best;
}

/** A unit's first assignment in a step: to whom, when, and how long it was expected to take
 * there (its place in the worker's queue times the worker's seconds per unit; undefined while
 * the worker is unmeasured). */
export interface UnitStart {
  worker: string;
  at: number;
  expectedMs: number | undefined;
}

/** A unit is backed up once it has run twice its expected time, and this much over it at least
 * (jitter in short units is no straggler). */
export const BACKUP_MIN_OVERDUE_MS = 1000;

/**
 * Backup copies for the tail of a step (speculative execution, as MapReduce's backup tasks): once
 * no unit is waiting in the queue, a unit still running past twice its expected time is also
 * given to a worker with a free slot, the fastest first; whichever result comes first is reduced.
 * A unit gets one backup at most. The caller calls this only with an empty queue.
 */
export function chooseBackups(starts: ReadonlyMap<number, UnitStart>, done: ReadonlySet<number>, backedUp: ReadonlySet<number>,
  workers: readonly WorkerRecord[], now: number): { unitId: number; worker: WorkerRecord }[] {
  const overdue = [...starts.entries()]
    .filter(([unitId, s]) => !done.has(unitId) && !backedUp.has(unitId) && s.expectedMs !== undefined
      && now - s.at > Math.max(2 * s.expectedMs, s.expectedMs + BACKUP_MIN_OVERDUE_MS))
    .sort(([, a], [, b]) => (a.at + (a.expectedMs ?? 0)) - (b.at + (b.expectedMs ?? 0)));
  const slots = workers.flatMap((w) => Array.from({ length: Math.max(0, w.slots - w.outstanding.size) }, () => w))
    .sort((a, b) => (a.secondsPerUnit ?? Infinity) - (b.secondsPerUnit ?? Infinity));
  const out: { unitId: number; worker: WorkerRecord }[] = [];
  for (const [unitId, start] of overdue) {
    const i = slots.findIndex((w) => w.id !== start.worker && !w.outstanding.has(unitId));
    if (i < 0) continue;
    out.push({ unitId, worker: slots[i] });
    slots.splice(i, 1);
  }
  return out;
}
