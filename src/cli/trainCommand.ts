/** `ddpm train`: a coordinator with an in-process worker, or with N local worker processes. */
import type { CommandModule } from 'yargs';
import { BackendName, initBackend } from '../backend/backend';
import { InProcessExecutor } from '../coordinator/inProcessExecutor';
import { UnitGradientComputer } from '../training/unitGradients';
import { UNetModel } from '../model/unetModel';
import { makeSchedule } from '../schedule';
import { withTrainOptions } from './options';
import { withClusterOptions, ClusterArgs, startRemoteExecutor } from './cluster';
import { JobArgs, effectiveConfig, log, runTrainingJob } from './trainJob';
import { spawnLocalWorkers } from './localWorkers';
import { UsageError } from './errors';

export interface TrainCommandArgs extends JobArgs, ClusterArgs {
  backend: string;
  workers: number;
}

export async function runTrain(a: TrainCommandArgs): Promise<void> {
  if (!Number.isInteger(a.workers) || a.workers < 0) throw new UsageError(`--workers must be a non-negative integer, got ${a.workers}`);
  const config = effectiveConfig(a);
  const backend = await initBackend(a.backend as BackendName, log);
  log(`backend: ${backend}`);
  if (a.workers === 0) {
    const model = new UNetModel(config.model);
    const executor = new InProcessExecutor(new UnitGradientComputer(model, makeSchedule(config.schedule, config.timesteps)));
    await runTrainingJob(a, config, executor, { workers: () => 1 });
    return;
  }
  const { executor, endpoint } = await startRemoteExecutor({ ...a, bind: 'tcp://127.0.0.1:0' }, config);
  const workers = spawnLocalWorkers(a.workers, endpoint, a.backend, log);
  try {
    await runTrainingJob(a, config, executor, {
      workers: () => executor.workerCount(),
      beforeTraining: () => executor.waitForWorkers(a['min-workers'] || a.workers, a['start-timeout'] * 1000),
    });
  } finally {
    await executor.stop();
    await workers.stop();
  }
}

export const trainCommand: CommandModule<object, TrainCommandArgs> = {
  command: 'train',
  describe: 'train a DDPM: coordinator + in-process worker, or + N local worker processes (--workers N)',
  builder: (y) => withClusterOptions(withTrainOptions(y))
    .option('workers', { type: 'number', default: 0, describe: 'local worker processes (0: compute in this process)' }) as never,
  handler: runTrain,
};
