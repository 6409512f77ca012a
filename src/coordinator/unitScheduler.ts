/**
 * Which worker computes the next unit: the one expected to finish it first, from measured seconds
 * per unit times its queue. Faster workers therefore get more units, and a unit waits for a busy
 * fast worker rather than going to a slow one. UnitScheduler keeps what that needs across steps
 * (each worker's measured speed, the workers to measure again); StepLedger keeps one step's units.
 */
import type { WorkerRecord } from './workerRegistry';
import type { StepLedger } from './stepLedger';
import { Remeasures, WorkerSpeeds } from './workerSpeeds';

/** A unit handed to a worker beside the queue's order: a backup, or a copy that measures it. */
export interface UnitCopy {
  unitId: number;
  worker: WorkerRecord;
}

/**
 * The remote executor's scheduling policy, apart from its messages: who gets the next unit, how
 * long it is expected to take there, each worker's measured speed, and which workers measured
 * too slow to be given units are measured again, on copies of units (beginStep, copies).
 */
export class UnitScheduler {
  private readonly speeds = new WorkerSpeeds();
  private readonly remeasures = new Remeasures();
  /** Steps begun so far. */
  private steps = 0;

  /** `depth`: units in flight per worker beyond its compute slots' first (chooseWorker); `log`
   * hears each worker measured again. */
  constructor(private readonly depth: number, private readonly log: (line: string) => void = () => undefined) {}

  /** A worker (re-)registered: it keeps the speed measured under its id. */
  attached(worker: WorkerRecord): void {
    worker.secondsPerUnit = this.speeds.get(worker.id);
  }

  /** A step begins: returns the workers due to be measured again (Remeasures), for copies(). */
  beginStep(workers: readonly WorkerRecord[]): WorkerRecord[] {
    this.steps++;
    return this.remeasures.due(workers, this.steps);
  }

  /**
   * Once the step's first units are handed out: a copy of one of its last units for each worker
   * `due` that was given none (one given units is measured on those, and a copy ahead of them
   * would delay them). The units are still computed where they were given, so the step never
   * waits for a copy; whichever result comes first is reduced, and the copy's time is measured
   * either way. The copies still need handing out (StepLedger.give).
   */
  copies(due: readonly WorkerRecord[], ledger: StepLedger): UnitCopy[] {
    const units = ledger.unitsToCopy();
    return due.filter((w) => w.outstanding.size === 0).slice(0, units.length).map((worker, i) => ({ worker, unitId: units[i] }));
  }

  /** The worker to give the next queued unit to, or undefined to wait for a busy faster one. */
  next(workers: readonly WorkerRecord[], now: number): WorkerRecord | undefined {
    return chooseWorker(workers, this.depth, now);
  }

  /** `worker` is given a unit, or a `copy` of one (copies()), now, before it is added to its
   * outstanding units: returns how long the unit is expected to take there (its place in the
   * worker's queue times its seconds per unit; undefined while the worker is unmeasured). */
  given(worker: WorkerRecord, now: number, copy = false): number | undefined {
    if (worker.outstanding.size === 0) worker.progressAt = now;
    this.remeasures.given(worker, this.steps, copy);
    const spu = worker.secondsPerUnit;
    return spu === undefined ? undefined : Math.ceil((worker.outstanding.size + 1) / worker.slots) * spu * 1000;
  }

  /** A unit's compute time on `worker`, from its result or a slower copy's. */
  measured(worker: WorkerRecord, computeSeconds: number): void {
    const fresh = worker.remeasuring;
    const old = worker.secondsPerUnit;
    this.speeds.record(worker, computeSeconds);
    this.remeasures.measured(worker);
    if (fresh !== undefined && !fresh.warmUp && worker.remeasuring === undefined) {
      this.log(`worker ${worker.name} measured again on ${fresh.needed} unit(s): ${(worker.secondsPerUnit as number).toFixed(3)} s a unit (was ${(old as number).toFixed(3)} s)`);
    }
  }

  /** `worker` missed a unit deadline and is dropped: should it return, it is served last. */
  missedDeadline(worker: WorkerRecord, deadlineSeconds: number): void {
    this.speeds.penalize(worker.id, deadlineSeconds);
  }

  /**
   * A backup copy was reduced before `first`'s, which had run since `startedAt`: `first` is taken
   * to be as slow as the unit has been there so far. Its own late result would have said so, but
   * it is dropped, and a straggler measured as fast would be handed unit after unit to stall on
   * (measured: 0.15x the steps/s of backups off).
   */
  lostToBackup(first: WorkerRecord, startedAt: number, now: number): void {
    first.secondsPerUnit = Math.max(first.secondsPerUnit ?? 0, (now - startedAt) / 1000);
    this.speeds.penalize(first.id, first.secondsPerUnit);
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
  workers: readonly WorkerRecord[], now: number): UnitCopy[] {
  const overdue = [...starts.entries()]
    .filter(([unitId, s]) => !done.has(unitId) && !backedUp.has(unitId) && s.expectedMs !== undefined
      && now - s.at > Math.max(2 * s.expectedMs, s.expectedMs + BACKUP_MIN_OVERDUE_MS))
    .sort(([, a], [, b]) => (a.at + (a.expectedMs ?? 0)) - (b.at + (b.expectedMs ?? 0)));
  const slots = workers.flatMap((w) => Array.from({ length: Math.max(0, w.slots - w.outstanding.size) }, () => w))
    .sort((a, b) => (a.secondsPerUnit ?? Infinity) - (b.secondsPerUnit ?? Infinity));
  const out: UnitCopy[] = [];
  for (const [unitId, start] of overdue) {
    const i = slots.findIndex((w) => w.id !== start.worker && !w.outstanding.has(unitId));
    if (i < 0) continue;
    out.push({ unitId, worker: slots[i] });
    slots.splice(i, 1);
  }
  return out;
}
