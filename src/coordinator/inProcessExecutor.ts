/** The in-process worker: single-machine training is the coordinator with this executor. It
 * computes with a worker's UnitComputer: in this thread, or on compute threads (`--threads`). */
import { StepWork, UnitExecutor } from './executor';
import type { UnitResult } from '../training/workUnit';
import type { UnitComputer } from '../worker/unitComputer';

export class InProcessExecutor implements UnitExecutor {
  private cancelled = false;

  constructor(private readonly computer: UnitComputer) {}

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    await this.computer.dispose();
  }

  cancel(): void {
    this.cancelled = true;
  }

  /** Up to `slots` units at once; each result is accepted as it comes (the reducer orders them). */
  async run(work: StepWork, accept: (result: UnitResult) => boolean): Promise<void> {
    this.cancelled = false;
    if (this.computer.paramVersion !== work.paramVersion) this.computer.setParams(work.params, work.paramVersion);
    const queue = [...work.units];
    const lane = async () => {
      for (let unit = queue.shift(); unit !== undefined && !this.cancelled; unit = queue.shift()) {
        const result = this.computer.compute(unit);
        // compute() returns once the unit's kernels are issued: on a GPU the host would now wait.
        if (queue.length > 0) this.computer.prepare?.(queue[0]);
        accept(await result);
        // Let timers (progress, metrics, signals) run between units.
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    await Promise.all(Array.from({ length: this.computer.slots }, lane));
  }

  workerCount(): number {
    return 1;
  }
}
