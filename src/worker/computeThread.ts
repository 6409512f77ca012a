/**
 * A compute thread of a worker (computeThreads.ts): its own tfjs engine and backend, one model,
 * and units in the order they arrive. Parameters and units share one FIFO port, so a unit is
 * always computed with the parameters sent before it.
 */
import { BackendName, initBackend } from '../backend/backend';
import type { UnitResult, WorkUnit } from '../training/workUnit';
import { serveThread } from '../util/threadPool';
import { threadCrashPoint } from '../util/crashPoint';
import { gradientComputer } from './unitComputer';
import type { ParamsMessage, ThreadInit } from './computeThreads';

void serveThread<WorkUnit, UnitResult, ParamsMessage>(async (data) => {
  const init = data as ThreadInit;
  const backend = await initBackend(init.backend as BackendName);
  const computer = gradientComputer(init);
  return {
    info: backend,
    broadcast: ({ flat, version }) => computer.setParams(flat, version),
    call: async (unit) => {
      threadCrashPoint('compute-thread', unit.step);
      const result = await computer.compute(unit);
      return { value: result, transfer: [result.gradSum.buffer as ArrayBuffer, result.lossByBucket.buffer as ArrayBuffer, result.countByBucket.buffer as ArrayBuffer] };
    },
  };
});
