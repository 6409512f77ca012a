/** The in-process worker: single-machine training is the coordinator with this executor. */
import { UnitGradientComputer } from '../training/unitGradients';
import { StepWork, UnitExecutor } from './executor';
import type { UnitResult } from '../training/workUnit';

export class InProcessExecutor implements UnitExecutor {
  constructor(private readonly computer: UnitGradientComputer) {}

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.computer.dispose();
  }

  private cancelled = false;

  cancel(): void {
    this.cancelled = true;
  }

  async run(work: StepWork, accept: (result: UnitResult) => boolean): Promise<void> {
    this.cancelled = false;
    if (this.computer.paramVersion !== work.paramVersion) this.computer.setParams(work.params, work.paramVersion);
    for (const unit of work.units) {
      if (this.cancelled) return;
      accept(this.computer.compute(unit));
      // Let timers (progress, metrics, signals) run between units.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  workerCount(): number {
    return 1;
  }
}
