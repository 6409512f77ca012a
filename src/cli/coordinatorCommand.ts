/** `ddpm coordinator`: bind a ROUTER socket and train with whatever workers attach. */
import type { CommandModule } from 'yargs';
import { BackendName, initBackend } from '../backend/backend';
import { withTrainOptions } from './options';
import { ClusterArgs, startRemoteExecutor, withClusterOptions } from './cluster';
import { JobArgs, effectiveConfig, log, runTrainingJob } from './trainJob';

interface CoordinatorArgs extends JobArgs, ClusterArgs {
  bind: string;
  backend: string;
  'metrics-port': number;
}

function isLoopback(address: string): boolean {
  return /^(tcp:\/\/)?(127\.\d+\.\d+\.\d+|localhost|\[::1\]):/.test(address) || address.startsWith('ipc://') || address.startsWith('inproc://');
}

export const coordinatorCommand: CommandModule<object, CoordinatorArgs> = {
  command: 'coordinator',
  describe: 'run the coordinator: workers attach with `ddpm worker --connect`',
  builder: (y) => withClusterOptions(withTrainOptions(y))
    .option('bind', { type: 'string', default: 'tcp://0.0.0.0:5555', describe: 'ZeroMQ address to bind' })
    .option('metrics-port', { type: 'number', default: 9464, describe: 'Prometheus /metrics port (0: off)' }) as never,
  handler: async (a) => {
    const config = effectiveConfig(a);
    // The coordinator computes no gradients; a backend is needed only for the final samples.
    const backend = await initBackend(a.backend as BackendName, log);
    log(`backend (sampling): ${backend}`);
    if (!isLoopback(a.bind)) log(`warning: ${a.bind} is reachable beyond this machine and CurveZMQ is off: any client can attach`);
    const { executor } = await startRemoteExecutor(a, config);
    try {
      await runTrainingJob(a, config, executor, {
        workers: () => executor.workerCount(),
        beforeTraining: () => executor.waitForWorkers(Math.max(1, a['min-workers']), a['start-timeout'] * 1000),
      });
    } finally {
      await executor.stop();
    }
  },
};
