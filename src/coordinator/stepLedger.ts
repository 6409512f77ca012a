/**
 * One step's units on their way through the workers (RemoteExecutor's bookkeeping, apart from
 * its messages): which wait in the queue, who was given each (only they may return it), when
 * each was first handed out (to find stragglers), which got a backup or a copy that measures a
 * worker, and which are reduced. FinishedSteps keeps what a late result needs of the last steps.
 */
import type { WorkerRecord } from './workerRegistry';
import { UnitCopy, UnitStart, chooseBackups } from './unitScheduler';

export class StepLedger {
  /** Units not handed out, in the order they will be. */
  readonly queue: number[];
  private readonly done = new Set<number>();
  private readonly givenTo = new Map<number, Set<string>>();
  private readonly starts = new Map<number, UnitStart>();
  /** Units given a backup copy (chooseBackups): the slower copy's result is expected and dropped
   * quietly, and if the backup's is first, the unit's first worker was a straggler. */
  readonly backedUp = new Set<number>();
  /** Units given to a worker to measure it again (UnitScheduler.copies), by who holds that copy:
   * the step does not count on it, so its unit is not its start and is still backed up or requeued
   * as if the copy were not there; its result, first or not, is no error. */
  private readonly copies = new Map<number, string>();

  constructor(private readonly unitIds: readonly number[]) {
    this.queue = [...unitIds];
  }

  get complete(): boolean {
    return this.done.size === this.unitIds.length;
  }

  isDone(unitId: number): boolean {
    return this.done.has(unitId);
  }

  /** `worker` is given `unitId`, or a `copy` of it, now; its first assignment that is not a copy
   * is the unit's start, `expectedMs` its expected time there. */
  give(unitId: number, worker: string, now: number, expectedMs: number | undefined, copy = false): void {
    if (copy) this.copies.set(unitId, worker);
    else if (!this.starts.has(unitId)) this.starts.set(unitId, { worker, at: now, expectedMs });
    let workers = this.givenTo.get(unitId);
    if (workers === undefined) this.givenTo.set(unitId, (workers = new Set()));
    workers.add(worker);
  }

  /** Whether `worker` holds `unitId` as a copy that measures it (give). */
  isCopy(unitId: number, worker: string): boolean {
    return this.copies.get(unitId) === worker;
  }

  /** Units a copy that measures a worker may be made of, the likeliest to finish last first:
   * queued ones from the back, then those handed out, latest first; none reduced or copied. */
  unitsToCopy(): number[] {
    const given = [...this.starts.keys()].reverse().filter((u) => !this.done.has(u));
    return [...[...this.queue].reverse(), ...given].filter((u) => !this.copies.has(u));
  }

  /** Whether a second result of `unitId` is expected: it was backed up, or copied to measure a worker. */
  hasCopy(unitId: number): boolean {
    return this.backedUp.has(unitId) || this.copies.has(unitId);
  }

  wasGiven(unitId: number, worker: string): boolean {
    return this.givenTo.get(unitId)?.has(worker) ?? false;
  }

  startOf(unitId: number): UnitStart | undefined {
    return this.starts.get(unitId);
  }

  /** The unit is reduced: out of the queue, should a requeued copy still be waiting there. */
  markDone(unitId: number): void {
    this.done.add(unitId);
    const queued = this.queue.indexOf(unitId);
    if (queued >= 0) this.queue.splice(queued, 1);
  }

  /** A departed worker's units that are neither reduced, queued, nor still running elsewhere (a
   * backup: a copy that measures a worker does not count) go back to the front of the queue, in
   * unit order; returns them. `holders` are the other workers holding a unit now. */
  requeue(units: readonly number[], holders: (unitId: number) => string[]): number[] {
    const runningElsewhere = (u: number) => holders(u).some((w) => !this.isCopy(u, w));
    const lost = units.filter((u) => !this.done.has(u) && !this.queue.includes(u) && !runningElsewhere(u)).sort((a, b) => a - b);
    this.queue.unshift(...lost);
    return lost;
  }

  /** Backup copies for stragglers, once the queue is empty (chooseBackups); they are recorded as
   * backed up, and still need handing out. */
  chooseBackups(workers: readonly WorkerRecord[], now: number): UnitCopy[] {
    if (this.queue.length > 0) return [];
    const backups = chooseBackups(this.starts, this.done, this.backedUp, workers, now);
    for (const { unitId } of backups) this.backedUp.add(unitId);
    return backups;
  }

  /** This process was not running for `ms` (a late timer): no unit ran longer meanwhile. */
  excuse(ms: number): void {
    for (const s of this.starts.values()) s.at += ms;
  }
}

/** Finished steps whose backed-up or copied units' slower results are still told from stale ones. */
export const FINISHED_STEPS_KEPT = 64;

/** The last finished steps, to say what a result for a step no longer running is. */
export class FinishedSteps {
  /** Newest last. */
  private readonly steps: { step: number; paramVersion: number; ledger: StepLedger }[] = [];

  add(step: number, paramVersion: number, ledger: StepLedger): void {
    this.steps.push({ step, paramVersion, ledger });
    if (this.steps.length > FINISHED_STEPS_KEPT) this.steps.shift();
  }

  /** A result for `unitId` of that step: the slower copy of a backed-up or copied unit (expected,
   * and it may come steps later), a duplicate from the newest finished step, or stale. */
  lateResult(step: number, paramVersion: number, unitId: number): 'slower copy' | 'duplicate' | 'stale' {
    const f = this.steps.find((s) => s.step === step && s.paramVersion === paramVersion);
    if (f?.ledger.hasCopy(unitId)) return 'slower copy';
    return f !== undefined && f === this.steps[this.steps.length - 1] ? 'duplicate' : 'stale';
  }
}
