/** `ddpm export`: a checkpoint's U-Net as a safetensors file with PyTorch's names and layouts. */
import type { CommandModule } from 'yargs';
import { loadCheckpointArg, readCheckpointConfig, resolveCheckpointDir } from '../checkpoint/store';
import { encodeSafetensors } from '../checkpoint/safetensors';
import { toTorch } from '../model/torchLayout';
import { UNetModel } from '../model/unetModel';
import { TrainConfig } from '../training/config';
import { writeFileAtomic } from '../util/fsync';
import { checkOutputDir } from './options';

export const EXPORT_FORMAT = 'ddpm-cluster-unet';
export const WEIGHT_CHOICES = ['ema', 'raw'] as const;
type Weights = (typeof WEIGHT_CHOICES)[number];

interface ExportArgs {
  checkpoint: string;
  weights: string;
  out: string;
}

/** What a PyTorch user needs beside the tensors to build the model and sample from it; the
 * values are strings, as safetensors requires. */
export function exportMetadata(config: TrainConfig, step: number, weights: Weights, parameters: number): Record<string, string> {
  return {
    format: EXPORT_FORMAT,
    unet_config: JSON.stringify(config.model),
    prediction: config.prediction,
    schedule: config.schedule,
    timesteps: String(config.timesteps),
    step: String(step),
    weights,
    parameters: String(parameters),
    ...(config.classNames && config.classNames.length > 0 ? { class_names: JSON.stringify(config.classNames) } : {}),
  };
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export',
  describe: 'write a checkpoint\'s U-Net as safetensors, under PyTorch\'s names and layouts (scripts/torch/ddpm_unet.py loads it)',
  builder: (y) => y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (a run directory uses its latest)' })
    .option('weights', { type: 'string', choices: WEIGHT_CHOICES, default: 'ema', describe: 'the EMA weights (what sampling uses) or the raw parameters' })
    .option('out', { type: 'string', default: 'model.safetensors', describe: 'output file, replaced atomically' }) as never,
  handler: (a) => {
    checkOutputDir(a.out, 'out');
    const model = new UNetModel(readCheckpointConfig(resolveCheckpointDir(a.checkpoint)).model);
    const loaded = loadCheckpointArg(a.checkpoint, model.specs, (l) => process.stderr.write(`${l}\n`));
    const weights = a.weights as Weights;
    const views = model.flatViews(weights === 'ema' ? loaded.state.ema : loaded.state.params);
    const tensors = model.specs.map((spec, i) => toTorch(spec, views[i]));
    const metadata = exportMetadata(loaded.config, loaded.state.step, weights, model.size);
    writeFileAtomic(a.out, encodeSafetensors({ tensors, metadata }));
    process.stderr.write(`wrote ${a.out}: ${tensors.length} tensors, ${model.size} parameters (${weights}) from ${loaded.dir} (step ${loaded.state.step})\n`);
  },
};
