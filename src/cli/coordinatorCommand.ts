/** `ddpm coordinator`: bind a ROUTER socket and train with whatever workers attach. */
import type { CommandModule } from 'yargs';
import { BackendName, initBackend } from '../backend/backend';
import { checkEndpoint, withTrainOptions } from './options';
import { ClusterArgs, remoteWorkerSource, startRemoteExecutor, withClusterOptions } from './cluster';
import { JobArgs, effectiveConfig, log, runTrainingJob, withSampleEveryOption } from './trainJob';
import { MetricsArgs, serveMetrics, withMetricsOptions } from '../metrics/cliOptions';
import { TrainingTelemetry } from '../metrics/trainingTelemetry';
import { CurveServerArgs, curveServerFromArgs, withCurveServerOptions } from './keygenCommand';

interface CoordinatorArgs extends JobArgs, ClusterArgs, MetricsArgs, CurveServerArgs {
  bind: string;
  backend: string;
}

/** Whether a ZeroMQ bind address is reachable only from this machine (no CURVE warning then). */
export function isLoopback(address: string): boolean {
  return /^(tcp:\/\/)?(127\.\d+\.\d+\.\d+|localhost|\[::1\]):/.test(address) || address.startsWith('ipc://') || address.startsWith('inproc://');
}

export const coordinatorCommand: CommandModule<object, CoordinatorArgs> = {
  command: 'coordinator',
  describe: 'run the coordinator: workers attach with `ddpm worker --connect`',
  // Prometheus scrapes the coordinator from another machine: listen on every interface by default.
  builder: (y) => withCurveServerOptions(withMetricsOptions(withSampleEveryOption(withClusterOptions(withTrainOptions(y))), { port: 9464, host: '0.0.0.0' }))
    .option('bind', { type: 'string', default: 'tcp://0.0.0.0:5555', describe: 'ZeroMQ address to bind' }) as never,
  handler: async (a) => {
    checkEndpoint(a.bind, 'bind');
    const config = effectiveConfig(a);
    // Key errors exit 2 before anything starts.
    const curve = curveServerFromArgs(a);
    const minWorkers = Math.max(1, a['min-workers']);
    const telemetry = new TrainingTelemetry({ totalSteps: config.steps, readyWorkers: minWorkers });
    // Up before data loading and worker waits, so /healthz answers and all series read 0 from the start.
    const serving = await serveMetrics(a, telemetry.routes(), log);
    try {
      // The coordinator computes no gradients; a backend is needed only for the sample grids.
      const backend = await initBackend(a.backend as BackendName, log);
      log(`backend (sampling): ${backend}`);
      if (!curve && !isLoopback(a.bind)) log(`warning: ${a.bind} is reachable beyond this machine and CurveZMQ is off: any client can attach`);
      const { executor } = await startRemoteExecutor(a, config, telemetry.executorEvents(), curve);
      telemetry.setWorkers(remoteWorkerSource(executor));
      try {
        await runTrainingJob(a, config, executor, {
          workers: () => executor.workerCount(),
          beforeTraining: () => executor.waitForWorkers(minWorkers, a['start-timeout'] * 1000),
          telemetry,
          backend,
        });
      } finally {
        await executor.stop();
      }
    } finally {
      await serving.close();
    }
  },
};
