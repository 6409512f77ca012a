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

  /** A moving average of the compute seconds the worker reports. */
  record(worker: WorkerRecord, computeSeconds: number): void {
    const s = Math.max(computeSeconds, 1e-4);
    worker.secondsPerUnit = worker.secondsPerUnit === undefined ? s : 0.7 * worker.secondsPerUnit + 0.3 * s;
    this.seconds.set(worker.id, worker.secondsPerUnit);
  }

  /** A missed deadline counts as the whole deadline: a worker that hung and returns is served last. */
  penalize(name: string, deadlineSeconds: number): void {
    this.seconds.set(name, deadlineSeconds);
  }
}

/**
 * The worker to give the next unit to, or undefined to wait for a busy but faster one. A worker
 * with k compute slots runs k units at once, each taking its seconds per unit, and may hold
 * `depth` units beyond its first k - 1 (so that no slot idles waiting for the next unit).
 */
export function chooseWorker(workers: readonly WorkerRecord[], depth: number): WorkerRecord | undefined {
  const known = workers.map((w) => w.secondsPerUnit).filter((v): v is number => v !== undefined);
  // An unmeasured worker is assumed as fast as the fastest, so it gets units and a measurement.
  const fallback = known.length > 0 ? Math.min(...known) : 0;
  const finish = (w: WorkerRecord) => Math.ceil((w.outstanding.size + 1) / w.slots) * (w.secondsPerUnit ?? fallback);
  const free = workers.filter((w) => w.outstanding.size < depth + w.slots - 1);
  if (free.length === 0) return undefined;
  const best = free.reduce((a, b) => (finish(b) < finish(a) ? b : a));
  return workers.some((w) => finish(w) < finish(best)) ? undefined : best;
}
