/** How the coordinator's loop gets unit results: in-process, or from ZeroMQ workers. */
import type { UnitResult, WorkUnit } from '../training/workUnit';

export interface StepWork {
  step: number;
  /** Parameters at this version; a worker holding an older version is sent these first. */
  paramVersion: number;
  params: Float32Array;
  units: WorkUnit[];
}

export interface UnitExecutor {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Computes every unit of the step, handing each result to `accept` (any order, once per unit
   * as far as the executor can tell; the caller drops duplicates). Resolves when all are accepted. */
  run(work: StepWork, accept: (result: UnitResult) => boolean): Promise<void>;
  /** Abandons the step in flight: run() resolves, later results for it are dropped. */
  cancel(): void;
  /** Workers currently computing for this executor. */
  workerCount(): number;
}
