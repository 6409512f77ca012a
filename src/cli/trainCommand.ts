/** `ddpm train`: a coordinator with an in-process worker, or with N local worker processes. */
import type { CommandModule } from 'yargs';
import { BackendName, initBackend } from '../backend/backend';
import { InProcessExecutor } from '../coordinator/inProcessExecutor';
import { TrainConfig } from '../training/config';
import { withTrainOptions } from './options';
import { withClusterOptions, ClusterArgs, remoteWorkerSource, startRemoteExecutor } from './cluster';
import { JobArgs, effectiveConfig, log, runTrainingJob, withSampleEveryOption } from './trainJob';
import { MAX_THREADS, availableCores, parseCountFlag, resolveComputeThreads, resolveLocalWorkers, spawnLocalWorkers } from './localWorkers';
import { replayStatusLogger, startUnitComputer } from '../worker/unitComputer';
import { MetricsArgs, serveMetrics, withMetricsOptions } from '../metrics/cliOptions';
import { TrainingTelemetry } from '../metrics/trainingTelemetry';
import { observeUnits } from '../metrics/unitProbe';
import { IN_PROCESS_WORKER } from '../metrics/names';

export interface TrainCommandArgs extends JobArgs, ClusterArgs, MetricsArgs {
  backend: string;
  workers: string;
  threads: string;
}

async function trainInProcess(a: TrainCommandArgs, config: TrainConfig, telemetry: TrainingTelemetry, backend: string, threads: number): Promise<void> {
  const computer = await startUnitComputer(threads, { backend, model: config.model, schedule: config.schedule, timesteps: config.timesteps, prediction: config.prediction, snrGamma: config.snrGamma });
  const joinedAt = Date.now();
  let lastSeen = joinedAt;
  // One worker that never leaves and sends nothing over a wire: the workers gauge reads 1, bytes stay 0.
  telemetry.setWorkers({ count: () => 1, rows: () => [{ name: IN_PROCESS_WORKER, backend, lastSeen, joinedAt }] });
  const logReplay = replayStatusLogger(log);
  const executor = observeUnits(new InProcessExecutor(computer), (r) => {
    lastSeen = Date.now();
    telemetry.onUnitDone(IN_PROCESS_WORKER, r.computeSeconds);
    logReplay(computer);
  });
  await runTrainingJob(a, config, executor, { workers: () => 1, telemetry, backend });
}

async function trainWithWorkers(a: TrainCommandArgs, config: TrainConfig, telemetry: TrainingTelemetry, count: number, needed: number, backend: string, threads: number): Promise<void> {
  const { executor, endpoint } = await startRemoteExecutor({ ...a, bind: 'tcp://127.0.0.1:0' }, config, telemetry.executorEvents());
  telemetry.setWorkers(remoteWorkerSource(executor));
  const workers = spawnLocalWorkers(count, endpoint, backend, threads, log);
  try {
    await runTrainingJob(a, config, executor, {
      workers: () => executor.workerCount(),
      beforeTraining: () => executor.waitForWorkers(needed, a['start-timeout'] * 1000),
      telemetry,
      backend,
    });
  } finally {
    await executor.stop();
    await workers.stop();
  }
}

export async function runTrain(a: TrainCommandArgs): Promise<void> {
  // Bad --workers or --threads fail before the backend loads.
  parseCountFlag('workers', a.workers, 0);
  parseCountFlag('threads', a.threads, 1, MAX_THREADS);
  const config = effectiveConfig(a);
  const backend = await initBackend(a.backend as BackendName, log);
  const cores = availableCores();
  const count = resolveLocalWorkers(a.workers, backend, cores, Math.ceil(config.batchSize / config.unitSize));
  // auto: the cores for an in-process worker on wasm/cpu; local processes already share them out.
  const threads = resolveComputeThreads(a.threads, backend, count === 0 ? cores : 1);
  const onThreads = threads > 1 ? ` on ${threads} threads${count > 0 ? ' each' : ''}` : '';
  log(`backend: ${backend}`);
  log(count === 0 ? `workers: computing in this process${onThreads}` : `workers: ${count} local processes${onThreads}`);
  const needed = count === 0 ? 1 : a['min-workers'] || count;
  const telemetry = new TrainingTelemetry({ totalSteps: config.steps, readyWorkers: needed, knownWorkers: count === 0 ? [IN_PROCESS_WORKER] : [] });
  const serving = await serveMetrics(a, telemetry.routes(), log);
  try {
    if (count === 0) await trainInProcess(a, config, telemetry, backend, threads);
    else await trainWithWorkers(a, config, telemetry, count, needed, backend, threads);
  } finally {
    await serving.close();
  }
}

export const trainCommand: CommandModule<object, TrainCommandArgs> = {
  command: 'train',
  describe: 'train a DDPM: a coordinator with local worker processes (one per core on wasm/cpu) or an in-process worker',
  // A local run: metrics off unless asked for, and then on loopback unless told otherwise.
  builder: (y) => withMetricsOptions(withSampleEveryOption(withClusterOptions(withTrainOptions(y))), { port: 0, host: '127.0.0.1' })
    .option('threads', { type: 'string', default: '1', describe: 'compute threads of each worker (the in-process one or each local process); auto: one per core for the in-process worker on wasm/cpu, else 1; units run whole on one thread, so results do not change' })
    .option('workers', { type: 'string', default: 'auto', describe: 'local worker processes; 0: compute in this process; auto: one per core on wasm/cpu (as many as a step has units), 0 on tensorflow/webgpu' }) as never,
  handler: runTrain,
};
