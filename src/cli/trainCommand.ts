/** `ddpm train`: the coordinator with an in-process worker, then a sample grid from the EMA weights. */
import type { CommandModule } from 'yargs';
import * as path from 'path';
import { BackendName, initBackend } from '../backend/backend';
import { fitDataset, loadDataset } from '../data/dataset';
import { CheckpointStore } from '../checkpoint/store';
import { Coordinator } from '../coordinator/coordinator';
import { InProcessExecutor } from '../coordinator/inProcessExecutor';
import { ProgressReporter } from '../coordinator/progressReporter';
import { LogFormat } from '../coordinator/progress';
import { UnitGradientComputer } from '../training/unitGradients';
import { UNetModel } from '../model/unetModel';
import { parameterCount } from '../model/paramSpecs';
import { makeSchedule } from '../schedule';
import { generateImages } from '../training/generate';
import { TrainConfig } from '../training/config';
import { TrainArgs, trainConfigFromArgs, withTrainOptions } from './options';
import { writeGrid } from './grid';
import { onStopSignals } from './signals';
import { readCheckpointConfig, resolveCheckpointDir } from '../checkpoint/store';
import * as fs from 'fs';

export interface TrainCommandArgs extends TrainArgs {
  backend: string;
  'checkpoint-dir': string;
  'checkpoint-every': number;
  keep: number;
  resume: boolean;
  'log-format': string;
  'log-every': number;
  'sample-n': number;
  'sample-steps': number;
  out?: string;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** On --resume the checkpoint's config wins (it fixes the results); only --steps may change. */
function effectiveConfig(a: TrainCommandArgs): TrainConfig {
  const fromFlags = trainConfigFromArgs(a);
  const root = a['checkpoint-dir'];
  if (!a.resume || !fs.existsSync(root) || fs.readdirSync(root).length === 0) return fromFlags;
  const saved = readCheckpointConfig(resolveCheckpointDir(root));
  return { ...saved, steps: fromFlags.steps };
}

export async function runTrain(a: TrainCommandArgs): Promise<void> {
  const config = effectiveConfig(a);
  const backend = await initBackend(a.backend as BackendName, log);
  log(`backend: ${backend}`);
  const raw = await loadDataset(config.data);
  const dataset = fitDataset(raw, config.model.imageSize, config.model.imageChannels);
  log(`data: ${raw.source}: ${raw.count} images ${raw.height}x${raw.width}x${raw.channels}` +
    (raw === dataset ? '' : `, fitted to ${dataset.height}x${dataset.width}x${dataset.channels}`));
  log(`model: ${parameterCount(config.model)} parameters; batch ${config.batchSize} in units of ${config.unitSize}; ${config.steps} steps`);
  const model = new UNetModel(config.model);
  const schedule = makeSchedule(config.schedule, config.timesteps);
  const store = new CheckpointStore(a['checkpoint-dir'], model.specs, log);
  const reporter = new ProgressReporter({ totalSteps: config.steps, format: a['log-format'] as LogFormat, everySeconds: a['log-every'], log: (l) => process.stdout.write(`${l}\n`) });
  const coordinator = new Coordinator({
    config, dataset, executor: new InProcessExecutor(new UnitGradientComputer(model, schedule)),
    checkpoints: { store, every: a['checkpoint-every'], keep: a.keep }, resume: a.resume, log,
    onStep: (r) => reporter.onStep(r, 1),
  });
  const unsubscribe = onStopSignals(() => coordinator.requestStop(), log);
  try {
    await coordinator.start();
    reporter.begin(coordinator.step);
    await coordinator.run();
    reporter.finish(coordinator.step);
  } finally {
    unsubscribe();
    await coordinator.stop();
  }
  log(`checkpoint: ${path.join(a['checkpoint-dir'], 'latest')} (step ${coordinator.step})`);
  if (a['sample-n'] > 0 && !coordinator.stopping) {
    const out = a.out ?? path.join(a['checkpoint-dir'], 'samples.png');
    const images = generateImages(model, coordinator.optimizerState.ema, schedule, { n: a['sample-n'], seed: 1, sampler: 'ddim', steps: a['sample-steps'], eta: 0 });
    writeGrid(out, images, a['sample-n'], config.model);
    log(`samples: ${out} (${a['sample-n']} images, EMA weights, DDIM ${a['sample-steps']} steps)`);
  }
}

export const trainCommand: CommandModule<object, TrainCommandArgs> = {
  command: 'train',
  describe: 'train a DDPM on one machine (coordinator + in-process worker)',
  builder: (y) => withTrainOptions(y) as never,
  handler: runTrain,
};
