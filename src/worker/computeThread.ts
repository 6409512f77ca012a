/**
 * A compute thread of a worker (computeThreads.ts): its own tfjs engine and backend, one model,
 * and units in the order they arrive. Parameters and units share one FIFO port, so a unit is
 * always computed with the parameters sent before it.
 */
import { parentPort, workerData } from 'worker_threads';
import { BackendName, initBackend } from '../backend/backend';
import type { UnitGradientComputer } from '../training/unitGradients';
import { gradientComputer } from './unitComputer';
import type { ThreadInit, ThreadReply, ThreadRequest } from './computeThreads';
import { threadCrashPoint } from '../util/crashPoint';

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('computeThread.js runs only as a worker thread');
  const init = workerData as ThreadInit;
  const reply = (m: ThreadReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  let computer: UnitGradientComputer;
  try {
    const backend = await initBackend(init.backend as BackendName);
    computer = gradientComputer(init);
    reply({ type: 'ready', backend });
  } catch (err) {
    reply({ type: 'failed', message: (err as Error).message });
    return;
  }
  const handle = async (m: ThreadRequest): Promise<void> => {
    if (m.type === 'params') {
      computer.setParams(m.flat, m.version);
      return;
    }
    threadCrashPoint('compute-thread', m.unit.step);
    try {
      const result = await computer.compute(m.unit);
      reply({ type: 'result', id: m.id, result }, [result.gradSum.buffer as ArrayBuffer, result.lossByBucket.buffer as ArrayBuffer, result.countByBucket.buffer as ArrayBuffer]);
    } catch (err) {
      reply({ type: 'error', id: m.id, message: (err as Error).message });
    }
  };
  // One request at a time, in arrival order: new parameters never land mid-unit.
  let queue = Promise.resolve();
  port.on('message', (m: ThreadRequest) => {
    queue = queue.then(() => handle(m));
  });
}

void main();
