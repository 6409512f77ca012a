/** How the coordinator's loop gets unit results: in-process, or from ZeroMQ workers. */
import type { DType } from '../protocol/dtypes';
import type { UnitResult, WorkUnit } from '../training/workUnit';

export interface StepWork {
  step: number;
  /** Parameters at this version; a worker holding an older version is sent these first. */
  paramVersion: number;
  params: Float32Array;
  /** The parameters already encoded in the executor's paramsDtype, in a buffer nothing writes
   * again (the update threads fill one per step); absent, the executor encodes them. */
  paramsFrame?: Uint8Array;
  units: WorkUnit[];
}

export interface UnitExecutor {
  /** The dtype in which it sends parameters, if it sends them at all (StepWork.paramsFrame). */
  readonly paramsDtype?: DType;
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
