/**
 * What a worker computes units with: in this thread, or on k threads of its own (computeThreads.ts).
 * wasm and the cpu backend compute on one core per thread, so a worker on a many-core CPU node runs
 * one thread per core; each unit is computed whole on one thread, so results do not depend on how
 * many threads a worker has.
 */
import { UnitGradientComputer } from '../training/unitGradients';
import { UnitResult, WorkUnit } from '../training/workUnit';
import { UNetModel } from '../model/unetModel';
import { makeSchedule } from '../schedule';
import { ComputeThreads, ThreadInit } from './computeThreads';

export interface UnitComputer {
  /** Units computed at once. */
  readonly slots: number;
  /** The parameter version that units given now are computed with (-1: none yet). */
  readonly paramVersion: number;
  /** On webgpu: which unit sizes are replayed without tfjs, which not and why (stepReplay.ts). */
  readonly replayStatus?: string;
  setParams(flat: Float32Array, version: number): void;
  compute(unit: WorkUnit): Promise<UnitResult>;
  /** Where it helps (a GPU computing while the host waits): makes the host's inputs of the unit
   * to be computed next, called once the current one's work is issued. */
  prepare?(unit: WorkUnit): void;
  /** Units computed from inputs that prepare() made. */
  readonly unitsFromPrepared?: number;
  dispose(): Promise<void>;
}

/** Calls `log` with the computer's replay status each time it changes (after a unit). */
export function replayStatusLogger(log: (line: string) => void): (computer: UnitComputer) => void {
  let last: string | undefined;
  return (computer) => {
    const status = computer.replayStatus;
    if (status === undefined || status === last) return;
    last = status;
    log(`webgpu step replay by unit size: ${status}`);
  };
}

/** One slot, in this thread: a unit's kernels run before compute() returns; its results are then
 * read back asynchronously (a GPU backend's reads are). */
export class InlineUnitComputer implements UnitComputer {
  readonly slots = 1;

  constructor(private readonly computer: UnitGradientComputer) {}

  get paramVersion(): number {
    return this.computer.paramVersion;
  }

  get replayStatus(): string | undefined {
    return this.computer.replayStatus;
  }

  setParams(flat: Float32Array, version: number): void {
    this.computer.setParams(flat, version);
  }

  compute(unit: WorkUnit): Promise<UnitResult> {
    return this.computer.compute(unit);
  }

  prepare(unit: WorkUnit): void {
    this.computer.prepare(unit);
  }

  get unitsFromPrepared(): number {
    return this.computer.unitsFromPrepared;
  }

  async dispose(): Promise<void> {
    this.computer.dispose();
  }
}

/** A worker's computer: `threads` compute threads of their own, or this thread when 1. */
export async function startUnitComputer(threads: number, init: ThreadInit): Promise<UnitComputer> {
  if (threads > 1) return ComputeThreads.start(threads, init);
  return new InlineUnitComputer(gradientComputer(init));
}

export function gradientComputer(init: ThreadInit): UnitGradientComputer {
  return new UnitGradientComputer(new UNetModel(init.model), makeSchedule(init.schedule, init.timesteps), { prediction: init.prediction, snrGamma: init.snrGamma });
}
