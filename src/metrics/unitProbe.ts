/**
 * Wraps an executor to see each unit result as it is accepted: the in-process executor has no
 * events of its own, and its units' compute time feeds the same counters as remote workers'.
 */
import type { StepWork, UnitExecutor } from '../coordinator/executor';
import type { UnitResult } from '../training/workUnit';

export function observeUnits(executor: UnitExecutor, onUnit: (r: UnitResult) => void): UnitExecutor {
  return {
    start: () => executor.start(),
    stop: () => executor.stop(),
    cancel: () => executor.cancel(),
    workerCount: () => executor.workerCount(),
    run: (work: StepWork, accept: (r: UnitResult) => boolean) => executor.run(work, (r) => {
      const accepted = accept(r);
      if (accepted) onUnit(r);
      return accepted;
    }),
  };
}
