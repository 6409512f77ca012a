/**
 * A worker's compute threads: k worker_threads, each with its own tfjs backend and copy of the
 * model (computeThread.ts). A unit goes to the thread with the fewest queued; parameters go to
 * every thread, in order with the units, so each unit sees the version it was given under.
 */
import { threadScript } from '../util/threadScript';
import { ThreadPool } from '../util/threadPool';
import type { UNetConfig } from '../model/config';
import type { ScheduleName } from '../schedule';
import type { Objective } from '../diffusion/types';
import type { UnitResult, WorkUnit } from '../training/workUnit';
import type { UnitComputer } from './unitComputer';

/** What a worker computes with: its backend, and the run's model, schedule and objective. */
export interface ThreadInit extends Objective {
  backend: string;
  model: UNetConfig;
  schedule: ScheduleName;
  timesteps: number;
}
export interface ParamsMessage {
  flat: Float32Array;
  version: number;
}

export class ComputeThreads implements UnitComputer {
  private version = -1;

  private constructor(private readonly pool: ThreadPool<WorkUnit, UnitResult, ParamsMessage>) {}

  /** Starts k threads and waits until each has its backend; fails if any cannot start. */
  static async start(k: number, init: ThreadInit): Promise<ComputeThreads> {
    const script = threadScript(__dirname, 'worker', 'computeThread');
    return new ComputeThreads(await ThreadPool.start<WorkUnit, UnitResult, ParamsMessage>(script, k, init, 'compute thread'));
  }

  get slots(): number {
    return this.pool.size;
  }

  get paramVersion(): number {
    return this.version;
  }

  setParams(flat: Float32Array, version: number): void {
    this.pool.broadcast({ flat, version });
    this.version = version;
  }

  compute(unit: WorkUnit): Promise<UnitResult> {
    return this.pool.call(unit);
  }

  dispose(): Promise<void> {
    return this.pool.dispose();
  }
}
