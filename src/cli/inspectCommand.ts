/** `ddpm inspect`: what a checkpoint holds, after checking every file against its manifest checksum. */
import * as fs from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { readCheckpointConfig, resolveCheckpointDir, verifyCheckpointDir } from '../checkpoint/store';
import { CheckpointError } from '../checkpoint/errors';
import { TrainStateFile } from '../checkpoint/format';
import { parameterCount } from '../model/paramSpecs';

interface InspectArgs {
  checkpoint: string;
  json: boolean;
}

function readTrainState(dir: string): TrainStateFile {
  const file = path.join(dir, 'train.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as TrainStateFile;
  } catch (err) {
    throw new CheckpointError(`${file}: unreadable (${(err as Error).message})`);
  }
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect <checkpoint>',
  describe: 'verify a checkpoint\'s checksums and print its step, loss, parameter count and config',
  builder: (y) => y
    .positional('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (a run directory uses its latest)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }) as never,
  handler: (a) => {
    const dir = resolveCheckpointDir(a.checkpoint);
    // Throws CheckpointError (one line, exit 2) on a missing, truncated or corrupt file.
    const manifest = verifyCheckpointDir(dir);
    // The config as training and sampling read it: fields added since it was saved show their value.
    const train = { ...readTrainState(dir), config: readCheckpointConfig(dir) };
    const parameters = parameterCount(train.config.model);
    if (parameters !== train.parameterCount) {
      throw new CheckpointError(`${dir}: train.json says ${train.parameterCount} parameters, its model config has ${parameters}`);
    }
    const files = Object.keys(manifest.files).length;
    if (a.json) {
      process.stdout.write(`${JSON.stringify({ dir, step: train.step, loss: train.loss, parameters, savedAt: train.savedAt, checksums: 'ok', files, config: train.config })}\n`);
      return;
    }
    const lines = [
      `checkpoint: ${dir}`,
      `step:       ${train.step}`,
      `loss:       ${train.loss === null ? '-' : train.loss.toFixed(6)}`,
      `parameters: ${parameters}`,
      `saved at:   ${train.savedAt}`,
      `checksums:  ok (${files} files)`,
      `config:     ${JSON.stringify(train.config, null, 2).replace(/\n/g, '\n            ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
